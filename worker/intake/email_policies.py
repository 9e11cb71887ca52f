"""The email package's policies mailpipe builds (``message``) and reads (``raw``) messages with.

They are the standard library's SMTP policies, with one change: each kind of
header's class is made once. The standard registry makes a new class with
``type()`` for every header it builds or parses, which was about a tenth of
the relay's and the HTTP intake's CPU per message.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import BaseHeader, HeaderRegistry


class _HeaderClasses(HeaderRegistry):
    """``HeaderRegistry``, with each class it makes kept. The class depends only on the
    registered class a name maps to (unknown names share the default), so there are at
    most as many as the registry has entries, whatever header names messages bring."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        cls = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(cls)
        if made is None:  # two threads may both make it: either class is as good
            made = self._made[cls] = type("_" + cls.__name__, (cls, self.base_class), {})
        return made


_HEADERS = _HeaderClasses()
# Built with 7bit so non-ASCII bodies get quoted-printable/base64 and need no
# 8BITMIME; SMTP's CRLF line endings.
BUILD = email.policy.SMTP.clone(cte_type="7bit", header_factory=_HEADERS)
BUILD_UTF8 = email.policy.SMTPUTF8.clone(cte_type="7bit", header_factory=_HEADERS)
# How a message that arrives whole is read.
READ = email.policy.SMTP.clone(header_factory=_HEADERS)
