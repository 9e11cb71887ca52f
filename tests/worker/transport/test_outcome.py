"""Outcomes made from a server's reply or from one of our errors, and their one-line summary."""

from __future__ import annotations

import ast
from pathlib import Path

from worker.errors import LimitsUnavailableError, MailpipeError
from worker.transport import RecipientResult, Reply, outcome
from worker.transport.outcome import Outcome, outcome_from_json, outcome_json

RECIPIENTS = (RecipientResult("a@example.test", True, code=250, text="2.1.5 Ok"),)


def test_an_outcome_from_a_reply_keeps_all_the_reply_says() -> None:
    reply = Reply(
        kind="permanent", code=554, text="5.2.0 quota", enhanced_code="5.2.0", hint="wait",
        queue_id="Q1", retry_after_seconds=30.0,
    )  # fmt: skip
    assert outcome("data", reply, recipients=RECIPIENTS) == Outcome(
        kind="permanent", phase="data", code=554, enhanced_code="5.2.0", text="5.2.0 quota",
        hint="wait", queue_id="Q1", recipients=RECIPIENTS, retry_after_seconds=30.0,
    )  # fmt: skip


def test_an_outcome_from_an_error_keeps_its_kind_message_hint_and_retry_after() -> None:
    error = MailpipeError("throttled", kind="transient", hint="later", retry_after_seconds=42.0)
    assert outcome("token", error, recipients=RECIPIENTS) == Outcome(
        kind="transient", phase="token", code=None, enhanced_code=None, text="throttled",
        hint="later", queue_id=None, recipients=RECIPIENTS, retry_after_seconds=42.0,
    )  # fmt: skip
    assert outcome("connect", LimitsUnavailableError("redis down")).kind == "transient"
    assert outcome("connect", LimitsUnavailableError("redis down")).recipients == ()


def test_the_summary_is_kind_phase_code_text_and_hint() -> None:
    full = Outcome("permanent", "rcpt", code=550, text="5.1.1 unknown", hint="check it")
    assert full.summary() == "permanent at rcpt: 550 5.1.1 unknown — check it"
    assert full.summary(with_hint=False) == "permanent at rcpt: 550 5.1.1 unknown"
    assert Outcome("transient", "connect").summary() == "transient at connect"
    assert Outcome("transient", "connect", text="refused").summary() == (
        "transient at connect: refused"
    )
    assert Outcome("transient", "data", code=451).summary() == "transient at data: 451"
    assert Outcome("delivered", "data", hint="").summary() == "delivered at data"


def test_an_outcome_kept_as_json_reads_back_the_same() -> None:
    refused = RecipientResult("b@example.test", False, 450, "4.2.1", "4.2.1 busy", "transient")
    kept = Outcome(
        "delivered", "data", code=250, enhanced_code="2.0.0", text="2.0.0 Ok", hint=None,
        queue_id="Q1", recipients=(*RECIPIENTS, refused), retry_after_seconds=None,
    )  # fmt: skip
    assert outcome_from_json(outcome_json(kept)) == kept
    assert outcome_from_json(outcome_json(kept).encode()) == kept


def test_no_module_but_outcome_py_makes_an_outcome() -> None:
    """``outcome()`` is the one place: a transport classifies a Reply, never builds the result."""
    package = Path(__file__).parents[3] / "worker"
    makers = []
    for path in package.rglob("*.py"):
        if path.name == "outcome.py" and path.parent.name == "transport":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Outcome":
                makers.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert makers == []
