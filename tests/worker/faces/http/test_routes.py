"""The [routes.NAME] tables: checked at load, templates compiled, one line per problem."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.callback_targets import CallbackPolicy
from worker.errors import ConfigError
from worker.faces.http.routes import (
    HTML_ENVIRONMENT,
    TEXT_ENVIRONMENT,
    Route,
    format_timestamp,
    load_routes,
    web_url,
)

PATH = Path("/etc/mailpipe/profiles.toml")
PROFILES = ("m365-alerts", "relay")

DOCUMENTED = """
[profiles.m365-alerts]
provider = "microsoft365"

[routes.oncall]
profile = "m365-alerts"
to = ["oncall@example.com"]
cc = ["sre-leads@example.com"]
bcc = ["audit@example.com"]
priority = "high"
subject_template = "[{{ status | upper }}] {{ payload.groupLabels.alertname }}"
text_template = "{{ alerts | length }} alerts"
html_template = "<p>{{ payload.commonAnnotations.summary }}</p>"

[routes.low-priority]
profile = "relay"
to = ["team@example.com"]
"""


def routes_of(toml: str) -> dict[str, Route]:
    return load_routes(tomllib.loads(toml), path=PATH, profile_names=PROFILES)


def problems_of(toml: str | dict[str, Any]) -> list[str]:
    document = tomllib.loads(toml) if isinstance(toml, str) else toml
    with pytest.raises(ConfigError) as caught:
        load_routes(document, path=PATH, profile_names=PROFILES)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{PATH}: ") for line in lines)
    return [line.removeprefix(f"{PATH}: ") for line in lines]


def test_a_file_without_a_routes_table_has_no_routes() -> None:
    assert routes_of('[profiles.relay]\nhost = "smtp.example.net"\n') == {}


def test_the_documented_route_loads_with_its_templates_compiled() -> None:
    routes = routes_of(DOCUMENTED)

    oncall = routes["oncall"]
    assert oncall.name == "oncall"
    assert oncall.profile == "m365-alerts"
    assert oncall.to == ("oncall@example.com",)
    assert oncall.cc == ("sre-leads@example.com",)
    assert oncall.bcc == ("audit@example.com",)
    assert oncall.priority == "high"
    assert oncall.subject_template is not None
    context = {"status": "firing", "payload": {"groupLabels": {"alertname": "DiskFull"}}}
    assert oncall.subject_template.render(context) == "[FIRING] DiskFull"


def test_a_route_defaults_to_normal_priority_and_the_built_in_templates() -> None:
    route = routes_of(DOCUMENTED)["low-priority"]

    assert route.priority == "normal"
    assert route.cc == route.bcc == ()
    assert route.subject_template is route.text_template is route.html_template is None


def test_a_route_is_immutable() -> None:
    route = routes_of(DOCUMENTED)["oncall"]

    with pytest.raises(dataclasses.FrozenInstanceError):
        route.profile = "relay"  # type: ignore[misc]


def test_an_unknown_profile_is_an_error_naming_the_known_profiles() -> None:
    problems = problems_of('[routes.oncall]\nprofile = "m365"\nto = ["oncall@example.com"]\n')

    assert problems == [
        "route 'oncall', field 'profile': unknown profile 'm365' (profiles: m365-alerts, relay)"
    ]


def test_a_route_without_a_profile_is_an_error() -> None:
    assert problems_of('[routes.oncall]\nto = ["oncall@example.com"]\n') == [
        "route 'oncall', field 'profile': missing: name the profile that sends this route's mail"
    ]


def test_unknown_fields_are_errors() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'subject = "x"\nreply_to = "noc@example.com"\n'
    )

    assert [p.split(": ")[0] for p in problems] == [
        "route 'oncall', field 'subject'",
        "route 'oncall', field 'reply_to'",
    ]
    assert all("unknown field (fields: profile, to, cc, bcc" in p for p in problems)


def test_a_route_with_no_recipient_is_an_error() -> None:
    assert problems_of('[routes.oncall]\nprofile = "relay"\nto = []\n') == [
        "route 'oncall', field 'to': no recipient: give at least one address in to, cc or bcc"
    ]


def test_a_route_with_only_bcc_recipients_is_enough() -> None:
    routes = routes_of('[routes.audit]\nprofile = "relay"\nbcc = ["audit@example.com"]\n')

    assert routes["audit"].bcc == ("audit@example.com",)


def test_recipients_must_be_a_list_of_addresses() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = "oncall@example.com"\n'
        'cc = ["lead@example.com", "not an address"]\nbcc = [42]\n'
    )

    assert problems == [
        "route 'oncall', field 'to': must be a list of addresses, like [\"oncall@example.com\"]",
        "route 'oncall', field 'cc': not an email address: 'not an address'",
        "route 'oncall', field 'bcc': must be a list of addresses, like [\"oncall@example.com\"]",
    ]


def test_an_address_with_a_line_break_is_refused() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com\\r\\nBcc: x@evil.example"]\n'
    )

    assert problems == [
        "route 'oncall', field 'to': not an email address: "
        "'oncall@example.com\\r\\nBcc: x@evil.example'"
    ]


def test_priority_is_normal_or_high() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\npriority = "urgent"\n'
    )

    assert problems == [
        "route 'oncall', field 'priority': must be 'normal' or 'high', not 'urgent'"
    ]


def test_a_template_syntax_error_names_the_template_field_and_the_line() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'text_template = """\n{% for alert in alerts %}\n'
        '{{ alert.labels.alertname }\n{% endfor %}"""\n'
    )

    assert len(problems) == 1
    assert problems[0].startswith(
        "route 'oncall', field 'text_template': template syntax error on line 2: "
    )


def test_an_unknown_filter_is_caught_at_load_not_when_the_alert_fires() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'subject_template = "{{ status | shout }}"\n'
    )

    assert problems == [
        "route 'oncall', field 'subject_template': "
        "template syntax error on line 1: No filter named 'shout'."
    ]


def test_an_empty_template_is_an_error() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\nhtml_template = " "\n'
    )

    assert problems == [
        "route 'oncall', field 'html_template': must be a non-empty string (a Jinja2 template)"
    ]


def test_every_problem_of_every_route_is_reported_on_its_own_line() -> None:
    problems = problems_of(
        '[routes.oncall]\nprofile = "nope"\nto = []\npriority = "low"\n'
        'subject_template = "{{ x"\n\n'
        '[routes.ok]\nprofile = "relay"\nto = ["ok@example.com"]\n\n'
        '[routes.team]\nprofile = "relay"\nto = ["team@example.com"]\ncolour = "red"\n'
    )

    assert [p.split(": ")[0] for p in problems] == [
        "route 'oncall', field 'profile'",
        "route 'oncall', field 'to'",
        "route 'oncall', field 'priority'",
        "route 'oncall', field 'subject_template'",
        "route 'team', field 'colour'",
    ]


def test_a_route_that_is_not_a_table_is_an_error() -> None:
    assert problems_of({"routes": {"oncall": "m365-alerts"}}) == [
        "route 'oncall': must be a table ([routes.oncall])"
    ]


def test_routes_that_is_not_a_table_is_an_error() -> None:
    assert problems_of({"routes": ["oncall"]}) == [
        "'routes' must be a table of [routes.NAME] tables"
    ]


def test_a_route_name_must_be_usable_in_a_url() -> None:
    problems = problems_of(
        '[routes."on call\\n"]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
    )

    assert problems == ["route 'on call\\n': a route name is 1-64 letters, digits, '.', '_' or '-'"]


def test_templates_compile_in_an_immutable_sandbox() -> None:
    assert isinstance(TEXT_ENVIRONMENT, ImmutableSandboxedEnvironment)
    assert isinstance(HTML_ENVIRONMENT, ImmutableSandboxedEnvironment)


def test_html_templates_are_autoescaped_and_subject_and_text_templates_are_not() -> None:
    route = routes_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'subject_template = "{{ payload.v }}"\ntext_template = "{{ payload.v }}"\n'
        'html_template = "<b>{{ payload.v }}</b>"\n'
    )["oncall"]
    context = {"payload": {"v": "<script>&"}}

    assert route.subject_template is not None
    assert route.text_template is not None
    assert route.html_template is not None
    assert route.subject_template.render(context) == "<script>&"
    assert route.text_template.render(context) == "<script>&"
    assert route.html_template.render(context) == "<b>&lt;script&gt;&amp;</b>"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2024-05-14T09:12:43.519331274Z", "2024-05-14 09:12:43 UTC"),
        ("2021-10-12T09:51:03.157076+02:00", "2021-10-12 07:51:03 UTC"),
        ("0001-01-01T00:00:00Z", ""),
        ("", ""),
        (None, ""),
        ("soon", "soon"),
    ],
)
def test_timestamps_read_in_utc_and_go_zero_time_reads_as_nothing(
    value: object, shown: str
) -> None:
    assert format_timestamp(value) == shown


@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("https://grafana.example.com/d/abc", "https://grafana.example.com/d/abc"),
        ("HTTP://prometheus:9090/graph", "HTTP://prometheus:9090/graph"),
        ("javascript:alert(1)", ""),
        ("data:text/html,<script>", ""),
        (None, ""),
    ],
)
def test_only_http_urls_become_links(value: object, link: str) -> None:
    assert web_url(value) == link


def test_a_route_may_name_a_callback_url_and_a_bad_one_is_an_error() -> None:
    route = routes_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'callback_url = "https://incidents.example.com/hooks/mailpipe"\n'
    )["oncall"]
    assert route.callback_url == "https://incidents.example.com/hooks/mailpipe"
    problems = problems_of(
        '[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n'
        'callback_url = "javascript:alert(1)"\n'
    )
    assert problems == [
        "route 'oncall', field 'callback_url': must be an http or https URL with a host"
    ]


def test_a_route_whose_callback_url_the_setting_does_not_allow_is_an_error() -> None:
    table = (
        '[routes.oncall]\nprofile = "m365-alerts"\nto = ["oncall@example.com"]\n'
        'callback_url = "http://169.254.169.254/latest/meta-data/"\n'
    )
    (line,) = problems_of(table)
    assert line.startswith("route 'oncall', field 'callback_url': 169.254.169.254 is a link-local")
    assert "MAILPIPE_CALLBACK_ALLOWED" in line
    # Allowed where the setting lists its network.
    policy = CallbackPolicy.parse(["http://169.254.0.0/16"])
    routes = load_routes(tomllib.loads(table), path=PATH, profile_names=PROFILES,
                         callback_policy=policy)  # fmt: skip
    assert routes["oncall"].callback_url == "http://169.254.169.254/latest/meta-data/"
