"""The profiles file: presets, secrets from three places, and one line per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from tests.keys import certificate_pem, private_pem, rsa_key, service_account_json
from worker.credentials import ProfilesFileError, load_profiles
from worker.errors import ConfigError, UnknownProfileError

EXAMPLE = Path(__file__).parents[3] / "deploy" / "profiles.example.toml"
ENV = {
    "M365_CLIENT_SECRET": "m365-secret-value",
    "M365_APP_SECRET": "m365-app-secret",
    "M365_REFRESH_TOKEN": "0.ARwA-refresh",
    "RELAY_PASSWORD": "relay-password",
    "LOCAL_SECRET": "local-secret",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ProfilesFileError) as caught:
        load_profiles(path, env or {})
    return [line.removeprefix(f"{path}: ") for line in str(caught.value).splitlines()]


def test_the_documented_example_loads_with_presets(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "profiles.toml")
    (tmp_path / "sa.json").write_text(service_account_json())
    (tmp_path / "ca.pem").write_text(certificate_pem().split("-----BEGIN PRIVATE KEY")[0])
    profiles = load_profiles(tmp_path / "profiles.toml", ENV)
    assert [p.name for p in profiles] == [
        "m365-alerts",
        "m365-delegated",
        "m365-graph",
        "google",
        "relay",
        "local",
    ]

    m365 = profiles.get("m365-alerts")
    assert (m365.host, m365.port, m365.security) == ("smtp.office365.com", 587, "starttls")
    assert m365.oauth is not None
    assert m365.oauth.token_url == (
        "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token"
    )
    assert m365.oauth.scope == "https://outlook.office365.com/.default"
    assert m365.oauth.client_secret is not None
    assert m365.oauth.client_secret.get_secret_value() == "m365-secret-value"
    assert m365.username == "alerts@example.com"
    assert m365.rate_per_minute == 30

    delegated = profiles.get("m365-delegated")
    assert delegated.oauth is not None
    assert delegated.oauth.scope == "https://outlook.office.com/SMTP.Send offline_access"
    assert delegated.oauth.token_url.startswith("https://login.microsoftonline.com/organizations/")

    google = profiles.get("google")
    assert (google.host, google.port) == ("smtp.gmail.com", 587)
    assert google.oauth is not None
    assert google.oauth.token_url == "https://oauth2.googleapis.com/token"
    assert google.oauth.scope == "https://mail.google.com/"
    assert google.oauth.subject == google.username == "alerts@example.org"
    assert google.rate_per_day == 2000

    relay = profiles.get("relay")
    assert relay.oauth is None and relay.password is not None
    assert relay.password.get_secret_value() == "relay-password"

    local = profiles.get("local")
    assert local.ca_file == tmp_path / "ca.pem"
    assert local.sasl == "oauthbearer"
    assert local.oauth is not None and local.oauth.client_secret is not None
    assert local.oauth.client_secret.get_secret_value() == "local-secret"
    # Secrets are kept in secret fields only: no other field of any profile (what
    # `profiles list`, logs and errors show) holds a secret the file pointed at.
    shown = [str(value) for profile in profiles for value in plain_values(profile)]
    assert not [s for s in ENV.values() for value in shown if s in value]


def plain_values(model: BaseModel) -> list[object]:
    """Every field value of ``model`` and the models in it, but for SecretStr fields."""
    values: list[object] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            values += plain_values(value)
        elif not isinstance(value, SecretStr):
            values.append(value)
    return values


def test_default_scope_follows_the_grant_for_microsoft(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[profiles.d]
provider = "microsoft365"
tenant = "contoso.onmicrosoft.com"
from_email = "oncall@contoso.com"
auth = "oauth"
grant = "refresh_token"
client_id = "app"
refresh_token = "0.ARwA-inline"
""",
    )
    oauth = load_profiles(path, {}).get("d").oauth
    assert oauth is not None
    assert oauth.scope == "https://outlook.office.com/SMTP.Send offline_access"


def test_a_broken_file_lists_every_problem_with_profile_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[profiles.typo]
provider = "microsoft365"
tenant = "t"
from_email = "a@example.com"
auth = "oauth"
grant = "password_grant"
client_idd = "x"

[profiles.nocid]
provider = "microsoft365"
tenant = "common"
from_email = "a@example.com"
auth = "oauth"
grant = "client_credentials"
client_secret = "s3cr3t-inline-value"
client_secret_env = "ALSO_SET"

[profiles.envless]
host = "smtp.example.net"
from_email = "a@example.net"
auth = "password"
password_env = "NOT_SET_ANYWHERE"

[profiles.nofile]
provider = "google_workspace"
from_email = "a@example.org"
auth = "oauth"
grant = "service_account"
service_account_file = "missing.json"

[profiles.plainhttp]
host = "smtp.example.net"
from_email = "a@example.net"
auth = "oauth"
grant = "client_credentials"
client_id = "x"
client_secret = "y-secret-value"
token_url = "http://idp.example.net/token"
""",
    )
    problems = problems_of(path)
    assert problems == [
        "profile 'typo', field 'grant': Input should be 'client_credentials', 'refresh_token' "
        "or 'service_account'",
        "profile 'typo', field 'client_idd': unknown field (check its spelling)",
        "profile 'nocid', field 'tenant': 'common' cannot issue app-only tokens: use your "
        "tenant ID or domain",
        "profile 'nocid', field 'client_id': missing (required for grant client_credentials)",
        "profile 'nocid', field 'client_secret': give only one of client_secret, client_secret_env",
        "profile 'envless', field 'password_env': environment variable NOT_SET_ANYWHERE is not set",
        f"profile 'nofile', field 'service_account_file': cannot read {tmp_path}/missing.json: "
        "No such file or directory",
        "profile 'plainhttp', field 'token_url': must be an https:// URL",
    ]
    assert not any("s3cr3t" in p for p in problems)


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("https://idp.example/token", False, True),
        ("http://127.0.0.1:8080/token", True, True),
        ("http://localhost:8080/token", True, True),
        ("http://[::1]:8080/token", True, True),
        ("http://127.0.0.1:8080/token", False, False),
        ("http://10.0.0.5/token", True, False),
        ("ftp://idp.example/token", True, False),
    ],
)
def test_token_url_must_be_https_except_on_loopback_when_allowed(
    tmp_path: Path, url: str, allow: bool, ok: bool
) -> None:
    path = write(
        tmp_path,
        f"""
[profiles.p]
host = "127.0.0.1"
from_email = "a@example.test"
auth = "oauth"
grant = "client_credentials"
client_id = "x"
client_secret = "y-secret-value"
token_url = "{url}"
allow_insecure_token_url = {str(allow).lower()}
""",
    )
    if ok:
        assert load_profiles(path, {}).get("p").oauth is not None
    else:
        assert problems_of(path)[0].startswith("profile 'p', field 'token_url': ")


def test_secret_files_and_certificates_are_read_relative_to_the_profiles_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "secret.txt").write_text("file-secret-value\n")
    (tmp_path / "cert.pem").write_text(certificate_pem())
    path = write(
        tmp_path,
        """
[profiles.s]
provider = "microsoft365"
tenant = "contoso.com"
from_email = "a@contoso.com"
auth = "oauth"
grant = "client_credentials"
client_id = "x"
client_secret_file = "secret.txt"

[profiles.c]
provider = "microsoft365"
tenant = "contoso.com"
from_email = "a@contoso.com"
auth = "oauth"
grant = "client_credentials"
client_id = "x"
client_certificate_file = "cert.pem"
""",
    )
    profiles = load_profiles(path, {})
    s, c = profiles.get("s").oauth, profiles.get("c").oauth
    assert s is not None and s.client_secret is not None
    assert s.client_secret.get_secret_value() == "file-secret-value"
    assert c is not None and c.client_certificate is not None


def test_a_private_key_pasted_as_client_secret_is_accepted_for_google(tmp_path: Path) -> None:
    pem = private_pem(rsa_key("google")).replace("\n", "\\n")
    path = write(
        tmp_path,
        f"""
[profiles.g]
provider = "google_workspace"
from_email = "alerts@example.org"
subject = "oncall@example.org"
auth = "oauth"
grant = "service_account"
client_email = "sa@example.iam.gserviceaccount.com"
client_secret = "{pem}"
""",
    )
    profile = load_profiles(path, {}).get("g")
    assert profile.oauth is not None and profile.oauth.private_key is not None
    assert profile.username == "oncall@example.org", "XOAUTH2 user= must equal the JWT sub"


def test_a_certificate_file_without_a_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text(certificate_pem().split("-----BEGIN PRIVATE KEY")[0])
    path = write(
        tmp_path,
        """
[profiles.c]
provider = "microsoft365"
tenant = "contoso.com"
from_email = "a@contoso.com"
auth = "oauth"
grant = "client_credentials"
client_id = "x"
client_certificate_file = "cert.pem"
""",
    )
    assert problems_of(path) == [
        "profile 'c', field 'client_certificate_file': client certificate is not a PEM "
        "private key (expected '-----BEGIN PRIVATE KEY-----')"
    ]


def test_file_level_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profiles file not found"):
        load_profiles(tmp_path / "nope.toml", {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profiles(write(tmp_path, "[profiles.x\n"), {})
    with pytest.raises(ConfigError, match=r"no \[profiles.NAME\] tables"):
        load_profiles(write(tmp_path, "title = 'x'\n"), {})


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "profiles.toml")
    (tmp_path / "sa.json").write_text(service_account_json())
    (tmp_path / "ca.pem").write_text(certificate_pem().split("-----BEGIN PRIVATE KEY")[0])
    profiles = load_profiles(tmp_path / "profiles.toml", ENV)
    with pytest.raises(
        UnknownProfileError, match="unknown profile 'nope' \\(profiles: google, local"
    ):
        profiles.get("nope")


def test_a_missing_ca_file_and_a_google_username_not_the_subject_are_reported(
    tmp_path: Path,
) -> None:
    (tmp_path / "sa.json").write_text(service_account_json())
    path = write(
        tmp_path,
        """
[profiles.g]
provider = "google_workspace"
from_email = "alerts@example.org"
username = "someone-else@example.org"
auth = "oauth"
grant = "service_account"
service_account_file = "sa.json"
ca_file = "missing-ca.pem"
""",
    )
    assert problems_of(path) == [
        "profile 'g', field 'username': must equal subject (or from_email) for a service account",
        f"profile 'g', field 'ca_file': cannot read {tmp_path}/missing-ca.pem: No such file or "
        "directory",
    ]


BARE = """
[profiles.alerts]
host = "smtp.example.test"
from_email = "alerts@example.test"
auth = "oauth"
grant = "client_credentials"
token_url = "https://login.example.test/token"
client_id = "app"
client_secret_env = "ALERTS_SECRET"

[profiles.relay]
host = "smtp.example.net"
from_email = "noreply@example.net"
auth = "password"
password_file = "relay-password.txt"
"""


def test_a_producer_loads_profiles_without_any_secret(tmp_path: Path) -> None:
    path = write(tmp_path, BARE)  # neither the variable nor the file exists

    profiles = load_profiles(path, {}, secrets=False)

    alerts = profiles.get("alerts")
    assert alerts.from_email == "alerts@example.test"
    assert alerts.oauth is not None and alerts.oauth.client_secret is None
    assert profiles.get("relay").password is None
    assert problems_of(path) == [
        "profile 'alerts', field 'client_secret_env': "
        "environment variable ALERTS_SECRET is not set",
        f"profile 'relay', field 'password_file': cannot read {tmp_path / 'relay-password.txt'}: "
        "No such file or directory",
    ], "a worker reads them all"


def test_empty_secrets_are_load_time_errors(tmp_path: Path) -> None:
    (tmp_path / "relay-password.txt").write_text("\n")
    path = write(tmp_path, BARE)

    assert problems_of(path, {"ALERTS_SECRET": "  "}) == [
        "profile 'alerts', field 'client_secret_env': environment variable ALERTS_SECRET is empty",
        f"profile 'relay', field 'password_file': {tmp_path / 'relay-password.txt'} is empty",
    ]
    inline = write(
        tmp_path, BARE.replace('client_secret_env = "ALERTS_SECRET"', 'client_secret = ""')
    )
    assert problems_of(inline)[0] == "profile 'alerts', field 'client_secret': is empty"


def _relay(name: str, fallback: str = "") -> str:
    return f"""
[profiles.{name}]
host = "smtp.example.net"
port = 465
security = "tls"
from_email = "{name}@example.net"
auth = "password"
password = "x"
{fallback}
"""


def test_fallbacks_load_in_order_and_bad_ones_are_one_line_each(tmp_path: Path) -> None:
    good = write(tmp_path, _relay("a", 'fallback = ["b", "c"]') + _relay("b") + _relay("c"))
    assert load_profiles(good, {}).get("a").fallback == ("b", "c")
    unknown = write(tmp_path, _relay("a", 'fallback = ["nope", "a"]') + _relay("b"))
    assert problems_of(unknown) == [
        "profile 'a', field 'fallback': names unknown profile 'nope' (profiles: b)",
        "profile 'a', field 'fallback': names itself (profiles: b)",
    ]
    cycle = write(
        tmp_path,
        _relay("a", 'fallback = ["b"]') + _relay("b", 'fallback = ["c"]')
        + _relay("c", 'fallback = ["a"]') + _relay("d", 'fallback = ["a"]'),
    )  # fmt: skip
    assert problems_of(cycle) == ["profile 'a', field 'fallback': a cycle (a → b → c → a)"]
