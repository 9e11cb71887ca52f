"""A FastAPI endpoint that does nothing: the yardstick for mailpipe's HTTP intake.

    python -m bench.run.yardsticks.bare_api PORT

Same route, same thread pool (a plain ``def``, as mailpipe's), same uvicorn
settings and the same Authorization header, but no validation, storage or
queueing: what is left of mailpipe's figures is the cost of accepting a job.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="bare")


@app.post("/v1/notifications", status_code=202)
def post_notification(body: dict[str, Any]) -> dict[str, str]:
    """Accept any JSON object, store nothing, queue nothing."""
    return {"id": "x", "status_url": "/v1/notifications/x"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
