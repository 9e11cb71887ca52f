"""The ``[routes.NAME]`` tables of the profiles file: where a webhook's mail goes, and how it reads.

A webhook sender (Alertmanager, Grafana, a script) names a route instead of a
profile and recipients, so who gets paged is decided in one reviewed file. Every
route is checked at load, templates included: a typo in a template fails at
start-up, with one line per problem naming the route and the field, rather than
at three in the morning when the alert fires.

Templates are Jinja2 in an immutable sandbox: they only read the payload. HTML
templates are autoescaped, so a label value cannot inject markup into the mail;
subject and text templates are not, since they are plain text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import ChainableUndefined, FileSystemLoader, Template, TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.addresses import address_problem, callback_url_problem
from worker.callback_targets import CallbackPolicy
from worker.credentials.profiles_document import ProfilesDocument
from worker.errors import ConfigError

Priority = Literal["normal", "high"]

_TEMPLATES_DIR = Path(__file__).parent / "templates"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RECIPIENT_FIELDS = ("to", "cc", "bcc")
_TEMPLATE_FIELDS = ("subject_template", "text_template", "html_template")
_FIELDS = ("profile", *_RECIPIENT_FIELDS, "priority", *_TEMPLATE_FIELDS, "callback_url")
_PRIORITIES: tuple[Priority, ...] = ("normal", "high")


def format_timestamp(value: object) -> str:
    """An RFC 3339 timestamp as ``2024-05-01 12:00:00 UTC``; empty for Go's zero time."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    # Alertmanager and Grafana send 0001-01-01T00:00:00Z for "not ended yet".
    if parsed.year <= 1:
        return ""
    if parsed.tzinfo is None:
        return value
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def web_url(value: object) -> str:
    """``value`` when it is an http(s) URL, else empty: only those become links in HTML mail."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value
    return ""


def _finalize(value: object) -> object:
    """What a ``{{ … }}`` writes: a value of the payload, never an object's or a method's repr.

    Python would print ``<built-in method title of … at 0x7f…>``, an address of
    the process, into someone's mail; a render error names the template instead.
    """
    if value is None:  # a JSON null reads as nothing, not as Python's "None"
        return ""
    if isinstance(value, Undefined) or _is_data(value):
        return value
    kind = "method or function" if callable(value) else type(value).__name__
    raise TypeError(f"a {kind} cannot be written into the mail: write a value of the payload")


def _is_data(value: object) -> bool:
    """JSON's kinds of value all the way down (what the payloads are made of)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_data(v) for k, v in value.items())
    return False


class _PayloadEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, reading JSON objects by key first.

    Jinja looks an attribute up before a key, so ``alert.values`` (Grafana's
    query results) or ``payload.items`` would be the dict's method, not the
    payload's field of that name.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _environment(*, autoescape: bool) -> ImmutableSandboxedEnvironment:
    environment = _PayloadEnvironment(
        loader=FileSystemLoader(_TEMPLATES_DIR),
        undefined=ChainableUndefined,
        autoescape=autoescape,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["timestamp"] = format_timestamp
    environment.filters["web_url"] = web_url
    return environment


# Shared by the routes' templates and the built-in ones, so both see the same filters.
TEXT_ENVIRONMENT = _environment(autoescape=False)
HTML_ENVIRONMENT = _environment(autoescape=True)


@dataclass(frozen=True)
class Route:
    """One ``[routes.NAME]`` table, checked, with its templates compiled."""

    name: str
    profile: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    priority: Priority = "normal"
    subject_template: Template | None = None
    text_template: Template | None = None
    html_template: Template | None = None
    # Where the events of this route's jobs are POSTed (signed); None: nowhere.
    callback_url: str | None = None


def routes_of(
    document: ProfilesDocument, callback_policy: CallbackPolicy | None = None
) -> dict[str, Route]:
    """The routes of the profiles file read as ``document``, checked against its profiles;
    ``callback_policy``: where their callbacks may go (None: the default, public https)."""
    return load_routes(
        document.tables,
        path=document.path,
        profile_names=document.profiles.by_name,
        callback_policy=callback_policy,
    )


def load_routes(
    document: Mapping[str, Any],
    *,
    path: Path,
    profile_names: Collection[str],
    callback_policy: CallbackPolicy | None = None,
) -> dict[str, Route]:
    """Check every ``[routes.NAME]`` table of the parsed profiles file; ConfigError lists all.

    A route's ``callback_url`` must be one ``callback_policy`` allows
    (MAILPIPE_CALLBACK_ALLOWED), or every webhook through it would be refused.
    """
    policy = callback_policy or CallbackPolicy.parse(())
    tables = document.get("routes")
    if tables is None:
        return {}
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{path}: 'routes' must be a table of [routes.NAME] tables")
    problems: list[str] = []
    routes: dict[str, Route] = {}
    for name, table in tables.items():
        checker = _RouteChecker(str(name), profile_names, policy)
        route = checker.check(table)
        problems.extend(f"{path}: {problem}" for problem in checker.problems)
        if route is not None:
            routes[route.name] = route
    if problems:
        raise ConfigError("\n".join(problems))
    return routes


class _RouteChecker:
    """Checks one route table, collecting every problem instead of stopping at the first."""

    def __init__(
        self, name: str, profile_names: Collection[str], callback_policy: CallbackPolicy
    ) -> None:
        self.name = name
        self.profile_names = profile_names
        self.callback_policy = callback_policy
        self.problems: list[str] = []

    def problem(self, field: str | None, message: str) -> None:
        where = f"route {self.name!r}" + (f", field {field!r}" if field else "")
        self.problems.append(f"{where}: {message}")

    def check(self, table: object) -> Route | None:
        if not _NAME.match(self.name):
            self.problem(None, "a route name is 1-64 letters, digits, '.', '_' or '-'")
        if not isinstance(table, Mapping):
            self.problem(None, f"must be a table ([routes.{self.name}])")
            return None
        for field in table:
            if field not in _FIELDS:
                self.problem(str(field), f"unknown field (fields: {', '.join(_FIELDS)})")
        profile = self._profile(table.get("profile"))
        recipients = {
            field: self._addresses(field, table.get(field)) for field in _RECIPIENT_FIELDS
        }
        if not any(recipients.values()):
            self.problem("to", "no recipient: give at least one address in to, cc or bcc")
        priority = self._priority(table.get("priority", "normal"))
        templates = {field: self._template(field, table.get(field)) for field in _TEMPLATE_FIELDS}
        callback_url = self._callback_url(table.get("callback_url"))
        if self.problems or profile is None or priority is None:
            return None
        return Route(
            name=self.name,
            profile=profile,
            to=recipients["to"],
            cc=recipients["cc"],
            bcc=recipients["bcc"],
            priority=priority,
            subject_template=templates["subject_template"],
            text_template=templates["text_template"],
            html_template=templates["html_template"],
            callback_url=callback_url,
        )

    def _callback_url(self, value: object) -> str | None:
        if value is None:
            return None
        problem = callback_url_problem(value) or self.callback_policy.url_refusal(str(value))
        if problem:
            self.problem("callback_url", problem)
            return None
        return str(value)

    def _profile(self, value: object) -> str | None:
        if value is None:
            self.problem("profile", "missing: name the profile that sends this route's mail")
        elif not isinstance(value, str):
            self.problem("profile", "must be a string")
        elif value not in self.profile_names:
            known = ", ".join(sorted(self.profile_names)) or "none"
            self.problem("profile", f"unknown profile {value!r} (profiles: {known})")
        else:
            return value
        return None

    def _addresses(self, field: str, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(field, 'must be a list of addresses, like ["oncall@example.com"]')
            return ()
        for address in value:
            if address_problem(address):
                self.problem(field, f"not an email address: {address!r}")
        return tuple(value)

    def _priority(self, value: object) -> Priority | None:
        for priority in _PRIORITIES:
            if value == priority:
                return priority
        self.problem("priority", f"must be 'normal' or 'high', not {value!r}")
        return None

    def _template(self, field: str, value: object) -> Template | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(field, "must be a non-empty string (a Jinja2 template)")
            return None
        environment = HTML_ENVIRONMENT if field == "html_template" else TEXT_ENVIRONMENT
        try:
            return environment.from_string(value)
        except TemplateSyntaxError as exc:
            message = " ".join(str(exc.message).split())
            self.problem(field, f"template syntax error on line {exc.lineno}: {message}")
            return None
