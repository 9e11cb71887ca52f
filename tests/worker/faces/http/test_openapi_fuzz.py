"""Schemathesis against the intake's own OpenAPI: never a 500, never a half-stored job."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case

from tests.pipeline import API_KEY, Pipeline
from worker.faces.http.server import build_app


def reachable(case: Case) -> Case:
    """Past the key check and to a real profile or route often enough to reach notify()."""
    for where in (case.query, case.headers):
        if where:
            for name in ("api_key", "authorization", "Authorization"):
                where.pop(name, None)
    if isinstance(case.body, dict) and "profile" in case.body and len(str(case.body)) % 2:
        case.body["profile"] = "alerts"
    if case.operation.path.startswith("/v1/webhooks") and len(str(case.body)) % 2:
        case.query = {
            **(case.query or {}),
            "route": "oncall" if "json" not in case.operation.path else "script",
        }
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_is_a_server_error_or_leaves_half_a_job(
    pipeline: Pipeline, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(pipeline.runtime))
    store = pipeline.runtime.store
    headers = {"Authorization": f"Bearer {API_KEY}"}

    @given(case=schema.as_strategy(mode).map(reachable))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def request(case: Case) -> None:
        before = sum(store.status_counts().values())
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        after = sum(store.status_counts().values())
        if response.status_code == 202:
            job = store.get_job(response.json()["id"])
            assert job is not None and job.message and job.recipients, "a stored job is whole"
            assert after - before in (0, 1)  # 0: an idempotency key seen before
        else:
            assert after == before, f"{response.status_code} but a job was stored"

    request()
