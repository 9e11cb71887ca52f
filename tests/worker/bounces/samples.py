"""Delivery status reports in the shapes Postfix, Exim, Exchange Online and Gmail send.

Written from their documented formats (RFC 3464; Postfix's bounce(8) and DSN_README,
Exim's spec chapter on DSN and delay warnings, Microsoft's "NDRs in Exchange Online",
Gmail's bounce messages); addresses, hosts and ids are the tests' own.
"""

from __future__ import annotations

SENDER = "alerts@example.test"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def returned_headers(message_id: str, to: str) -> str:
    return (f"From: Example Alerts <{SENDER}>\nTo: {to}\nSubject: [P1] db-01 down\n"
            f"Date: Mon, 07 Dec 2026 12:00:00 +0000\nMessage-ID: {message_id}\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n")  # fmt: skip


def postfix(envid: str, message_id: str, recipient: str) -> bytes:
    """Postfix's bounce(8): a 5.1.1 at the next hop, ENVID kept, headers returned (RET=HDRS)."""
    b = "8F2A31C0042.1796040005/mx.example.net"
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {SENDER}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{b}"
Message-Id: <20261207120005.8F2A31C0042@mx.example.net>
Date: Mon,  7 Dec 2026 12:00:05 +0000 (UTC)

This is a MIME-encapsulated message.

--{b}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx2.example.net[192.0.2.25] said: 550 5.1.1
    <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--{b}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 8F2A31C0042
X-Postfix-Sender: rfc822; {SENDER}
Arrival-Date: Mon,  7 Dec 2026 12:00:01 +0000 (UTC)
Original-Envelope-Id: {envid}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx2.example.net
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:
    User unknown in virtual mailbox table

--{b}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{returned_headers(message_id, recipient)}
--{b}--
""")


def exim_delay(envid: str, message_id: str, recipient: str) -> bytes:
    """Exim's delay warning as a DSN: Action delayed, 4.0.0, the ENVID passed on."""
    b = "1796040005-eximdsn-1804289383"
    return _crlf(f"""From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: {SENDER}
Auto-Submitted: auto-replied
Subject: Warning: message 1kLmNo-000Abc-Xy delayed 24 hours
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary={b}
Content-Transfer-Encoding: 7bit

--{b}
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mail.example.org.

--{b}
Content-type: message/delivery-status

Reporting-MTA: dns; mail.example.org
Original-Envelope-ID: {envid}

Action: delayed
Final-Recipient: rfc822;{recipient}
Status: 4.0.0
Remote-MTA: dns; mx.far.example
Diagnostic-Code: smtp; 451 4.4.0 Temporary failure, please try again later
Will-Retry-Until: Mon, 11 Dec 2026 12:00:00 +0000

--{b}
Content-type: text/rfc822-headers

{returned_headers(message_id, recipient)}
--{b}--
""")


def exchange_online(message_id: str, recipient: str) -> bytes:
    """An Exchange Online NDR: no ENVID (matched by Message-ID), 5.1.10, marked as an NDR."""
    b = "_000_AM0PR01MB12345678ABCDEF_"
    return _crlf(f"""From: Microsoft Outlook
 <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.test>
To: <{SENDER}>
Subject: Undeliverable: [P1] db-01 down
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{b}"

--{b}
Content-Type: multipart/alternative; boundary="_alt_"

--_alt_
Content-Type: text/plain; charset="us-ascii"

Your message to {recipient} couldn't be delivered.
{recipient.split("@")[0]} wasn't found at {recipient.split("@")[1]}.

--_alt_
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message couldn't be delivered.</p></body></html>
--_alt_--

--{b}
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;AM0PR01MB5678.eurprd01.prod.exchangelabs.com
Arrival-Date: Mon, 7 Dec 2026 12:00:01 +0000

Original-Recipient: rfc822;{recipient}
Final-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found
 by SMTP address lookup

--{b}
Content-Type: message/rfc822

{returned_headers(message_id, recipient)}
The database is down.
--{b}--
""")


def gmail(message_id: str, recipient: str) -> bytes:
    """Gmail's bounce: 550-5.1.1 multi-line diagnostic, the whole message returned."""
    b = "000000000000a1b2c3d4e5f60718"
    return _crlf(f"""From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {SENDER}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="{b}"; report-type=delivery-status

--{b}
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset="UTF-8"

<html><p>Address not found</p></html>
--rel--

--{b}
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; mail-sor-f41.google.com
Arrival-Date: Mon, 07 Dec 2026 04:00:01 -0800 (PST)
X-Original-Message-ID: {message_id}

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (2607:f8b0:4004:c07::1b, the server
 for the domain gmail.com.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does
 not exist. Please try double-checking the recipient's email address for typos
 or unnecessary spaces. 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser
Last-Attempt-Date: Mon, 07 Dec 2026 04:00:02 -0800 (PST)

--{b}
Content-Type: message/rfc822

{returned_headers(message_id, recipient)}
The database is down.
--{b}--
""")


def unrelated() -> bytes:
    return _crlf(f"""From: Someone <someone@example.org>
To: {SENDER}
Subject: Re: [P1] db-01 down
Message-ID: <reply-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Thanks, looking into it.
""")
