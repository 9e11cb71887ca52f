"""Profiles with transport = "graph": Graph's scopes, limits and URL, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.credentials.test_profiles import problems_of, write
from worker.credentials import load_profiles

ENV = {"SECRET": "graph-secret"}
APP_ONLY = """
[profiles.g]
provider = "microsoft365"
transport = "graph"
tenant = "contoso.onmicrosoft.com"
from_email = "alerts@contoso.example"
auth = "oauth"
grant = "client_credentials"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "SECRET"
"""


def test_an_app_only_graph_profile_gets_graphs_scope_url_and_limits(tmp_path: Path) -> None:
    profile = load_profiles(write(tmp_path, APP_ONLY), ENV).get("g")
    assert profile.transport == "graph"
    assert profile.graph_url == "https://graph.microsoft.com/v1.0"
    assert profile.oauth is not None
    assert profile.oauth.scope == "https://graph.microsoft.com/.default"
    assert profile.max_connections == 4  # Outlook: 4 concurrent requests per mailbox
    assert profile.max_message_bytes == 3_000_000  # 4 MB per request, base64-encoded
    # Exchange Online's mailbox limits hold whatever the protocol.
    assert (profile.rate_per_minute, profile.recipients_per_day) == (30, 10_000)
    assert profile.save_to_sent_items is True


def test_a_delegated_graph_profile_asks_for_mail_send(tmp_path: Path) -> None:
    text = APP_ONLY.replace('grant = "client_credentials"', 'grant = "refresh_token"')
    text += 'refresh_token_env = "SECRET"\n'
    profile = load_profiles(write(tmp_path, text), ENV).get("g")
    assert profile.oauth is not None
    assert profile.oauth.scope == "https://graph.microsoft.com/Mail.Send offline_access"


def test_an_smtp_profile_keeps_exchanges_smtp_scope(tmp_path: Path) -> None:
    text = APP_ONLY.replace('transport = "graph"\n', "")
    profile = load_profiles(write(tmp_path, text), ENV).get("g")
    assert profile.transport == "smtp"
    assert profile.graph_url is None
    assert profile.oauth is not None
    assert profile.oauth.scope == "https://outlook.office365.com/.default"
    assert profile.max_connections == 3


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ('provider = "microsoft365"', 'provider = "google_workspace"'),
            "transport: 'graph' is Microsoft Graph: only for provider microsoft365",
        ),
        (
            ('transport = "graph"', 'transport = "graph"\ngraph_url = "http://graph.example"'),
            "graph_url: must be an https:// URL",
        ),
        (
            ('transport = "graph"', 'transport = "graph"\nmax_message_bytes = 5000000'),
            "max_message_bytes: Graph takes at most 3000000 bytes per message "
            "(4 MB per request, base64-encoded)",
        ),
        (
            ('transport = "graph"', 'transport = "smtp"\ngraph_url = "https://graph.example"'),
            'graph_url: only for transport = "graph"',
        ),
        (
            ('transport = "graph"', 'transport = "ews"'),
            "transport: Input should be 'smtp' or 'graph'",
        ),
    ],
)
def test_what_graph_refuses_is_one_line_naming_the_field(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    text = APP_ONLY.replace(*change)
    if "google_workspace" in text:  # keep the rest valid for Google
        text = text.replace('grant = "client_credentials"', 'grant = "service_account"')
        text = text.replace('client_secret_env = "SECRET"', 'service_account_env = "SECRET"')
    field, message = problem.split(": ", 1)
    assert f"profile 'g', field '{field}': {message}" in problems_of(write(tmp_path, text), ENV)


def test_a_password_graph_profile_is_refused(tmp_path: Path) -> None:
    text = APP_ONLY.replace('auth = "oauth"', 'auth = "password"\npassword_env = "SECRET"')
    text = text.replace('grant = "client_credentials"\n', "")
    text = text.replace('client_secret_env = "SECRET"\n', "").replace(
        'client_id = "11111111-1111-1111-1111-111111111111"\n', ""
    )
    message = 'Microsoft Graph takes OAuth tokens only: use auth = "oauth"'
    assert f"profile 'g', field 'auth': {message}" in problems_of(write(tmp_path, text), ENV)
