"""A browser's part in signing in, with the standard library: it follows redirects and logs nothing.

(httpx's debug log would print the redirect with the authorization code, which the secret
scan rightly counts as a leak: a real browser keeps it to itself.)
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(ca_file: Path, *handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(ca_file))
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), *handlers)


def redirect_of(url: str, ca_file: Path) -> str:
    """Where the sign-in page sends the browser back to (its 302 Location)."""
    try:
        _opener(ca_file, _NoRedirects()).open(url, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 302:
            return str(exc.headers["Location"])
        raise AssertionError(f"sign-in page answered {exc.code}: {exc.read()[:300]!r}") from None
    raise AssertionError("the sign-in page did not redirect")


def sign_in(url: str, ca_file: Path) -> tuple[int, str]:
    """Open the sign-in URL and follow every redirect, as a browser does: status and page."""
    try:
        with _opener(ca_file).open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
