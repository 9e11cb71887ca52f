"""A session's errors: their kind, hint and one-line text come from the reply that ended it."""

from __future__ import annotations

from worker.transport import ConnectionDropped, ConnectionsBusy, Reply, SessionError


def reply(kind: str = "permanent", hint: str | None = "the reply's hint") -> Reply:
    return Reply(kind=kind, code=550, text="5.7.1 refused", enhanced_code="5.7.1", hint=hint)  # type: ignore[arg-type]


def test_a_reply_gives_its_kind_text_and_hint() -> None:
    error = SessionError("mail", reply())
    assert (error.kind, error.message, error.hint) == (
        "permanent",
        "5.7.1 refused",
        "the reply's hint",
    )
    assert error.reply == reply()
    assert error.phase == "mail"
    assert str(error) == "permanent at mail: 550 5.7.1 refused — the reply's hint"
    assert error.outcome.code == 550
    assert error.outcome.enhanced_code == "5.7.1"


def test_a_kind_or_hint_given_wins_over_the_replys() -> None:
    error = SessionError("mail", reply(), kind="transient", hint="ours")
    assert (error.kind, error.hint) == ("transient", "ours")
    assert error.outcome.kind == "transient"
    assert error.outcome.hint == "the reply's hint", "the outcome keeps the server's advice"
    assert str(error) == "transient at mail: 550 5.7.1 refused — the reply's hint"


def test_an_unexpected_success_reply_ends_the_session_as_transient() -> None:
    error = SessionError("ehlo", reply(kind="delivered"))
    assert error.kind == "transient"
    assert error.outcome.kind == "transient"
    assert SessionError("auth", reply(kind="auth_rejected")).kind == "auth_rejected"


def test_our_own_reason_is_the_message_and_permanent_unless_told() -> None:
    error = SessionError("tls", "certificate not trusted", hint="set ca_file")
    assert (error.kind, error.message, error.hint, error.reply) == (
        "permanent",
        "certificate not trusted",
        "set ca_file",
        None,
    )
    assert str(error) == "permanent at tls: certificate not trusted — set ca_file"
    assert error.outcome.code is None
    assert SessionError("connect", "refused", kind="transient").kind == "transient"


def test_dropped_and_busy_connections_are_transient() -> None:
    assert ConnectionDropped("data", "connection lost").kind == "transient"
    assert ConnectionsBusy("connect", "3 in use").kind == "transient"
    assert (
        ConnectionsBusy("connect", "3 in use").outcome.summary() == "transient at connect: 3 in use"
    )
