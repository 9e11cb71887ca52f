"""``[profiles.NAME.bounces]``: the mailbox a profile's reports are read from, presets applied."""

from __future__ import annotations

from pathlib import Path

from tests.worker.credentials.test_profiles import problems_of, write
from worker.credentials import load_profiles

ENV = {"SECRET": "bounce-secret"}
M365 = """
[profiles.m]
provider = "microsoft365"
tenant = "contoso.onmicrosoft.com"
from_email = "alerts@contoso.example"
auth = "oauth"
grant = "client_credentials"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "SECRET"

[profiles.m.bounces]
"""


def test_microsoft_365_reads_outlook_over_993_with_the_apps_imap_scope(tmp_path: Path) -> None:
    profile = load_profiles(write(tmp_path, M365), ENV).get("m")
    box = profile.bounces
    assert box is not None
    assert (box.host, box.port, box.folder, box.move_to) == (
        "outlook.office365.com", 993, "INBOX", None,
    )  # fmt: skip
    assert box.username == "alerts@contoso.example"
    assert box.scope == "https://outlook.office365.com/.default"
    # The SMTP token keeps its own scope.
    assert profile.oauth is not None
    assert profile.oauth.scope == "https://outlook.office365.com/.default"


def test_a_delegated_microsoft_profile_asks_for_imap_access_as_user(tmp_path: Path) -> None:
    text = M365.replace('grant = "client_credentials"', 'grant = "refresh_token"')
    text = text.replace(
        "[profiles.m.bounces]", 'refresh_token_env = "SECRET"\n[profiles.m.bounces]'
    )
    box = load_profiles(write(tmp_path, text), ENV).get("m").bounces
    assert box is not None
    assert box.scope == "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"


def test_google_reads_imap_gmail_com_with_the_mail_scope(tmp_path: Path) -> None:
    text = """
[profiles.g]
provider = "google_workspace"
from_email = "alerts@example.org"
auth = "oauth"
grant = "service_account"
service_account_env = "SECRET"

[profiles.g.bounces]
folder = "[Gmail]/All Mail"
move_to = "mailpipe/handled"
"""
    box = load_profiles(write(tmp_path, text), ENV, secrets=False).get("g").bounces
    assert box is not None
    assert (box.host, box.scope, box.folder, box.move_to) == (
        "imap.gmail.com", "https://mail.google.com/", "[Gmail]/All Mail", "mailpipe/handled",
    )  # fmt: skip


def test_a_password_profile_reads_with_its_password_and_needs_a_host(tmp_path: Path) -> None:
    text = """
[profiles.r]
host = "smtp.example.net"
from_email = "noreply@example.net"
auth = "password"
username = "noreply@example.net"
password_env = "SECRET"

[profiles.r.bounces]
"""
    assert problems_of(write(tmp_path, text), ENV) == [
        "profile 'r', field 'bounces.imap_host': missing (required for provider 'generic')"
    ]
    box = load_profiles(write(tmp_path, text.replace(
        "[profiles.r.bounces]", '[profiles.r.bounces]\nimap_host = "imap.example.net"'
    )), ENV).get("r").bounces  # fmt: skip
    assert box is not None
    assert (box.host, box.username, box.scope) == ("imap.example.net", "noreply@example.net", None)


def test_without_a_bounces_table_nothing_is_read(tmp_path: Path) -> None:
    text = M365.replace("[profiles.m.bounces]\n", "")
    assert load_profiles(write(tmp_path, text), ENV).get("m").bounces is None
