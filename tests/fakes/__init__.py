"""Servers and clients that stand in for someone else, on real local sockets, for tests and bench.

- SMTP: ``smtp_server.FakeSmtpServer`` (parts: ``smtp_tls``, ``smtp_records``, ``smtp_protocol``,
  ``smtp_auth``) and the smtplib side of its self-tests (``smtp_client``);
- identity: ``idp.FakeIdP``, a token endpoint, with ``idp_bodies`` (Entra ID's and Google's
  documented answers); ``login``, Microsoft's sign-in pages, and ``browser``, the user's part;
  ``token_endpoint.FormTokenEndpoint``, the plumbing under the benchmark's and the chaos run's
  token endpoints (they keep their own counts and faults);
- ``graph``: Microsoft Graph's ``sendMail`` and mailboxes;
- ``callback_receiver``: an incident system receiving mailpipe's callbacks.
- ``clock.Clock``: time that moves only when a test (or a sleep) moves it.

The sandbox (``mailpipe sandbox``) ships with mailpipe and so has its own provider and SMTP
server in ``worker/faces/``: nothing shipped imports from here.
"""
