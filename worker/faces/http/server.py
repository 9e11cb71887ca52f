"""``mailpipe serve``: the HTTP intake on uvicorn, bound safely.

Without API keys anyone who can connect may send mail as every profile, so
serve then refuses any address but loopback. uvicorn's access log is off: it
would print query strings, and webhook senders put their key in one
(``?api_key=``); our own line (``access_log.py``) leaves the query out.
"""

from __future__ import annotations

import gc
import ipaddress

import uvicorn
from fastapi import FastAPI

from worker.credentials import is_loopback
from worker.errors import ConfigError
from worker.faces.http.access_log import AccessLog
from worker.faces.http.app import create_app
from worker.faces.http.keys import ApiKeys
from worker.queue import Producer, build_producer


def build_app(runtime: Producer, *, owns_runtime: bool = False) -> FastAPI:
    """The app for ``runtime``: its routes loaded and checked, its API keys.

    ``owns_runtime``: close the runtime when the server stops (uvicorn ends a
    process stopped by a signal by raising the signal again, so code after
    ``uvicorn.run`` would never run).
    """
    keys = ApiKeys(runtime.settings.api_keys)
    app = create_app(runtime, keys, on_shutdown=runtime.close if owns_runtime else None)
    app.add_middleware(AccessLog)  # added last, so it runs first and times everything
    return app


def check_bind(host: str, keys: ApiKeys) -> None:
    if keys.required or is_loopback(host):
        return
    wildcard = host in ("0.0.0.0", "::") or _is_unspecified(host)  # noqa: S104
    where = "every address" if wildcard else host
    raise ConfigError(
        f"refusing to serve on {where} without API keys: anyone could send mail as any "
        "profile; set MAILPIPE_API_KEYS (`mailpipe api-key new NAME`) or bind 127.0.0.1"
    )


def serve(host: str, port: int) -> None:
    runtime = build_producer()
    check_bind(host, ApiKeys(runtime.settings.api_keys))
    app = build_app(runtime, owns_runtime=True)
    # Everything built so far lives as long as the process: out of the
    # collector's way, full collections pause requests for milliseconds, not 80.
    gc.freeze()
    print(f"mailpipe: serving the HTTP intake on http://{host}:{port} (API at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
