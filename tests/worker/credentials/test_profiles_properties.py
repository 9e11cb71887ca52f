"""Properties: any profiles file loads, or fails with a ConfigError whose every line names it.

Documents are built from working profiles (one per way of giving
credentials) with fields set to hostile values, dropped, or added; or they
are arbitrary bytes, UTF-8 or not. Secret files, key files and environment
variables exist, are empty, are not text, or are missing. No other
exception may escape ``load_profiles``, no line may lose the file's name, and
no secret may appear in an error.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.keys import certificate_pem, private_pem, rsa_key, service_account_json
from worker.credentials import load_profiles
from worker.errors import ConfigError

_PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET = "s3cret-in-a-file"
ENV_SECRET = "s3cret-in-the-environment"
ENV = {
    "SECRET": ENV_SECRET,
    "EMPTY": "",
    "BLANK": "  ",
    "NOT_UTF8": "\udcff\udcfe",  # bytes that are not UTF-8, as os.environ decodes them
    "KEY": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
}
_FILES = {
    "secret.txt": SECRET.encode(),
    "empty.txt": b"",
    "blank.txt": b" \n",
    "binary.bin": b"\xff\xfe\x00\x01",
    "garbage.pem": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    "sa-garbage.json": b'{"type": "service_account"}',
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Key files, secret files and a directory next to the profiles file."""
    directory = tmp_path_factory.mktemp("profiles")
    for name, data in _FILES.items():
        (directory / name).write_bytes(data)
    (directory / "key.pem").write_text(private_pem(rsa_key()))
    (directory / "cert.pem").write_text(certificate_pem())
    (directory / "ca.pem").write_text(certificate_pem().split("-----BEGIN PRIVATE KEY")[0])
    (directory / "sa.json").write_text(service_account_json())
    (directory / "a-directory").mkdir()
    return directory


# -- values -------------------------------------------------------------------------

_NASTY = [
    "", " ", "\x00", "\n", "\r\n", "\x0b", "\x85", "\u2028", "\t", "\x1b", "\x7f", "\ud800",
    '"', "\\", "'", "{tenant}", "%s", "é", "😀", "x" * 300, "[", "]", "=", "#",
]  # fmt: skip
_TEXT = st.lists(st.one_of(st.sampled_from(_NASTY), st.text(max_size=6)), max_size=4).map("".join)
_ODD_FILE_NAMES = [
    *_FILES, "key.pem", "cert.pem", "ca.pem", "sa.json", "a-directory", "missing.txt",
    "~nosuchuser-mailpipe/x", "~/x", "a\x00b", "/", ".", "", "../secret.txt", "x" * 300,
    "a-directory/../secret.txt", "a\nb",
]  # fmt: skip
_ODD_ENV_NAMES = [*ENV, "UNSET", "A\nB", "", "A\x00B"]
_ODD_URLS = [
    "https://login.example.com/token", "http://127.0.0.1:8080/token", "http://[::1",
    "https://[::1]:99999/x", "http://localhost/t", "http://example.com/t", "ftp://x/y", "https://",
    "", "https://user:pw@host/t", "https://h/t?q=\n", "https://h:x/t", "//h/t", "https://[v1.x]/t",
]  # fmt: skip
_ODD_NUMBERS = [0, 1, -1, 1023, 1024, 65535, 65536, 2**63 - 1, -(2**63), 2**64, 0.5, 1e300]
_ODD_NUMBERS += [math.inf, -math.inf, math.nan, True]
_FILE_NAMES = st.one_of(st.sampled_from(_ODD_FILE_NAMES), _TEXT)
_ENV_NAMES = st.one_of(st.sampled_from(_ODD_ENV_NAMES), _TEXT)
_URLS = st.one_of(st.sampled_from(_ODD_URLS), _TEXT)
_NUMBERS = st.one_of(
    st.integers(-5, 70000),
    st.sampled_from(_ODD_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
)
_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)
_CHOICES: dict[str, list[str]] = {
    "provider": ["generic", "microsoft365", "google_workspace"],
    "security": ["starttls", "tls", "none"],
    "auth": ["oauth", "password"],
    "sasl": ["xoauth2", "oauthbearer"],
    "grant": ["client_credentials", "refresh_token", "service_account"],
    "client_auth": ["body", "basic"],
    "assertion_algorithm": ["PS256", "RS256"],
    "tenant": ["contoso.onmicrosoft.com", "common", "organizations", "consumers"],
    "host": ["smtp.example.net", "127.0.0.1", "localhost", "::1", "10.0.0.1"],
}
_INTEGERS = ["port", "rate_per_minute", "rate_per_day", "recipients_per_day", "max_connections"]
_INTEGERS += ["max_recipients", "max_message_bytes"]
_BOOLEANS = ["sasl_initial_response", "allow_insecure_token_url", "allow_plaintext_auth"]
_FILE_FIELDS = ["ca_file", "token_ca_file", "client_certificate_file", "service_account_file"]
_FILE_FIELDS += ["password_file", "client_secret_file", "refresh_token_file", "private_key_file"]
_ENV_FIELDS = ["password_env", "client_secret_env", "refresh_token_env", "private_key_env"]
_ENV_FIELDS += ["service_account_env"]
_TEXT_FIELDS = ["from_email", "from_name", "username", "password", "client_id", "client_secret"]
_TEXT_FIELDS += ["refresh_token", "redirect_uri", "private_key", "private_key_id", "client_email"]
_TEXT_FIELDS += ["subject", "scope", "ehlo_name"]


def _value_for(field: str) -> st.SearchStrategy[Any]:
    """Values a person might write for ``field``, sensible or not, or anything at all."""
    if field in _CHOICES:
        likely: st.SearchStrategy[Any] = st.sampled_from(_CHOICES[field]) | _TEXT
    elif field in _INTEGERS:
        likely = _NUMBERS
    elif field in _BOOLEANS:
        likely = st.booleans()
    elif field in _FILE_FIELDS:
        likely = _FILE_NAMES
    elif field in _ENV_FIELDS:
        likely = _ENV_NAMES
    elif field == "token_url":
        likely = _URLS
    elif field == "timeout_seconds":
        likely = _NUMBERS
    else:
        likely = _TEXT
    return st.one_of(likely, likely, likely, _ANY)


_FIELDS = sorted(
    {*_CHOICES, *_INTEGERS, *_BOOLEANS, *_FILE_FIELDS, *_ENV_FIELDS, *_TEXT_FIELDS}
    | {"token_url", "timeout_seconds"}
)
# Fields that name files, variables and URLs, read in more ways than the others.
_RISKY = [*_FILE_FIELDS, *_ENV_FIELDS, "token_url", "timeout_seconds", "tenant", "from_email"]
# Working profiles, one per way of giving credentials; examples start from one.
_TEMPLATES: list[dict[str, Any]] = [
    {"host": "smtp.example.net", "from_email": "a@example.net", "auth": "password",
     "password_env": "SECRET"},
    {"host": "127.0.0.1", "port": 2587, "from_email": "a@example.test", "auth": "password",
     "password_file": "secret.txt", "ca_file": "ca.pem", "security": "tls"},
    {"provider": "microsoft365", "tenant": "contoso.onmicrosoft.com", "from_email": "a@example.com",
     "auth": "oauth", "grant": "client_credentials", "client_id": "id",
     "client_secret_env": "SECRET"},
    {"provider": "microsoft365", "tenant": "organizations", "from_email": "a@example.com",
     "auth": "oauth", "grant": "refresh_token", "client_id": "id", "refresh_token": "r"},
    {"provider": "microsoft365", "tenant": "contoso.onmicrosoft.com", "from_email": "a@example.com",
     "auth": "oauth", "grant": "client_credentials", "client_id": "id",
     "client_certificate_file": "cert.pem"},
    {"provider": "google_workspace", "from_email": "a@example.org", "auth": "oauth",
     "grant": "service_account", "service_account_file": "sa.json"},
    {"provider": "google_workspace", "from_email": "a@example.org", "auth": "oauth",
     "grant": "service_account", "private_key_file": "key.pem",
     "client_email": "sa@p.iam.gserviceaccount.com"},
    {"host": "127.0.0.1", "from_email": "a@example.test", "auth": "oauth",
     "grant": "client_credentials", "token_url": "http://127.0.0.1:8443/token",
     "allow_insecure_token_url": True, "client_id": "c", "client_secret": "inline",
     "sasl": "oauthbearer", "timeout_seconds": 5.5, "rate_per_minute": 30},
]  # fmt: skip


@st.composite
def _profile_tables(draw: st.DrawFn) -> dict[str, Any]:
    table = dict(draw(st.sampled_from(_TEMPLATES)))
    fields = st.one_of(st.sampled_from(_RISKY), st.sampled_from(_FIELDS))
    for field in draw(st.lists(fields, max_size=3)):
        base = field.removesuffix("_env").removesuffix("_file")
        for sibling in (base, f"{base}_env", f"{base}_file"):  # so that this one is read
            table.pop(sibling, None)
        table[field] = draw(_value_for(field))
    for field in draw(st.lists(st.sampled_from(sorted(table)), max_size=2)):
        table.pop(field, None)
    if draw(st.integers(0, 9)) == 0:
        table[draw(_TEXT)] = draw(_ANY)  # a key that is no field
    return table


_GOOD_NAMES = st.sampled_from(["relay", "m365-alerts", "a.b_c-1", "x" * 64])
_PROFILE_NAMES = st.one_of(_GOOD_NAMES, _GOOD_NAMES, _GOOD_NAMES, _TEXT)


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    profiles: Any = draw(st.dictionaries(_PROFILE_NAMES, _profile_tables(), min_size=1, max_size=3))
    shape = draw(st.sampled_from(["tables"] * 8 + ["empty", "not a table", "table of values"]))
    event(f"document: {shape}")
    if shape == "empty":
        profiles = {}
    elif shape == "not a table":
        profiles = draw(_ANY.filter(lambda v: not isinstance(v, dict)))
    elif shape == "table of values":
        profiles = draw(st.dictionaries(_PROFILE_NAMES, _ANY, min_size=1, max_size=2))
    document: dict[str, Any] = {"profiles": profiles}
    if draw(st.booleans()):
        document[draw(_TEXT)] = draw(_ANY)
    return document


# -- TOML ------------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    escaped = []
    for c in text:
        if c in '"\\':
            escaped.append("\\" + c)
        elif ord(c) < 0x20 or c == "\x7f" or "\ud800" <= c <= "\udfff":
            escaped.append(f"\\u{ord(c):04x}")  # a surrogate escape is invalid TOML: fine too
        else:
            escaped.append(c)
    return '"' + "".join(escaped) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
        )
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(value)


def _toml(document: dict[str, Any]) -> str:
    """The document as TOML; None (which TOML cannot say) leaves the key out."""
    lines = [
        f"{_toml_string(k)} = {_toml_value(v)}"
        for k, v in document.items()
        if k != "profiles" and v is not None
    ]
    profiles = document["profiles"]
    if not isinstance(profiles, dict):
        if profiles is not None:
            lines.append(f"profiles = {_toml_value(profiles)}")
        return "\n".join(lines) + "\n"
    for name, table in profiles.items():
        if not isinstance(table, dict):
            if table is not None:
                lines.append(f"profiles.{_toml_string(name)} = {_toml_value(table)}")
            continue
        lines.append(f"[profiles.{_toml_string(name)}]")
        lines += [
            f"{_toml_string(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None
        ]
    return "\n".join(lines) + "\n"


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a surrogate in the bytes: not UTF-8


# -- the property --------------------------------------------------------------------


_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _load(path: Path, secrets: bool, *, record: bool = True) -> None:
    try:
        profiles = load_profiles(path, ENV, secrets=secrets)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines
        for line in lines:
            assert line.startswith(f"{path}: "), line
            assert SECRET not in line and ENV_SECRET not in line
        if record:
            event(f"refused: {lines[0].removeprefix(f'{path}: ')[:30]}")
        return
    if record:
        event(f"loaded {len(profiles)} profile(s)")
    for profile in profiles:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", profile.name), profile.name
        assert not _UNPRINTABLE.search(profile.from_email), profile.from_email
        assert profile.timeout_seconds is None or math.isfinite(profile.timeout_seconds)
        assert (profile.password is None) == (profile.auth != "password" or not secrets)
        secret_values = [profile.password, *(dict(profile.oauth or {}).values())]
        for value in secret_values:
            if isinstance(value, SecretStr):
                value.get_secret_value().encode()  # sendable: no undecodable bytes


@_PROPERTY
@given(document=_documents(), secrets=st.booleans())
def test_any_profiles_document_loads_or_fails_naming_the_file_on_every_line(
    workdir: Path, document: dict[str, Any], secrets: bool
) -> None:
    path = workdir / "profiles.toml"
    path.write_bytes(_encoded(_toml(document)))
    _load(path, secrets)


@_PROPERTY
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda doc, at, junk: doc[:at] + junk + doc[at:],
            _documents().map(_toml).map(_encoded),
            st.integers(0, 200),
            st.sampled_from([b"\xff", b"\xc3", b"\xe2\x80", b"\xed\xa0\x80", b"\x00", b"\r"]),
        ),
        _documents().map(_toml).map(lambda t: t.encode("utf-16", "surrogatepass")),
    ),
    secrets=st.booleans(),
)
def test_any_bytes_as_a_profiles_file_load_or_fail_naming_the_file(
    workdir: Path, data: bytes, secrets: bool
) -> None:
    path = workdir / "profiles.toml"
    path.write_bytes(data)
    _load(path, secrets)


def test_a_profiles_file_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    data = '[profiles.relay]\nfrom_name = "Überwachung"\n'.encode("latin-1")
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_profiles(path, {})
    offset = data.index(b"\xdc")
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (byte {offset} is 0xdc); save the profiles file as UTF-8"
    )


# Where each field is read: the working profile (index in _TEMPLATES) that uses it.
_WHERE_READ: dict[str, tuple[int, ...]] = {
    "password_file": (0,), "password_env": (0,), "password": (0,),
    "ca_file": (1, 7), "token_ca_file": (7,), "token_url": (2, 7), "tenant": (2, 3),
    "client_secret_file": (2,), "client_secret_env": (2,), "client_secret": (2,),
    "client_certificate_file": (4,), "refresh_token_file": (3,), "refresh_token_env": (3,),
    "service_account_file": (5,), "service_account_env": (5,), "private_key_file": (6,),
    "private_key_env": (6,), "private_key": (6,),
    "from_email": (0,), "username": (0,), "subject": (5,), "timeout_seconds": (0,), "port": (0,),
    "max_message_bytes": (0,), "host": (0, 7),
}  # fmt: skip


def _odd_values(field: str) -> list[Any]:
    if field in _FILE_FIELDS:
        return _ODD_FILE_NAMES
    if field in _ENV_FIELDS:
        return _ODD_ENV_NAMES
    if field == "token_url":
        return _ODD_URLS
    if field in (*_INTEGERS, "timeout_seconds"):
        return _ODD_NUMBERS
    if field in ("from_email", "client_email", "subject"):
        return [*_ODD_ADDRESSES, *_NASTY]
    return [*_NASTY, *_CHOICES.get(field, [])]


_ODD_ADDRESSES = ["a@example.com\n", "a@example.com ", " a@example.com", "a@b", "a@example.com\x00"]
_ODD_ADDRESSES += ["a\x1b@example.com", "a@example.com\u2028", "a@exa mple.com", "a@@example.com"]
_ODD_NAMES = ["relay\n", "relay ", "", "a" * 65, "-x", ".x", "r\x00", "r\u2028", "ü", "r/s"]


def test_every_odd_profile_name(workdir: Path) -> None:
    path = workdir / "odd-names.toml"
    for name in _ODD_NAMES:
        path.write_bytes(_encoded(_toml({"profiles": {name: _TEMPLATES[0]}})))
        _load(path, secrets=True, record=False)


def test_every_odd_value_where_it_is_read(workdir: Path) -> None:
    """Exhaustive where sampling is thin: each odd file name, variable, URL and number."""
    path = workdir / "odd-values.toml"
    for field, templates in _WHERE_READ.items():
        for template in templates:
            for value in _odd_values(field):
                table = dict(_TEMPLATES[template])
                base = field.removesuffix("_env").removesuffix("_file")
                for sibling in (base, f"{base}_env", f"{base}_file"):
                    table.pop(sibling, None)
                table[field] = value
                path.write_bytes(_encoded(_toml({"profiles": {"p": table}})))
                _load(path, secrets=True, record=False)
