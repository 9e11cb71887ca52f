"""Where callbacks may go: MAILPIPE_CALLBACK_ALLOWED read and applied, without sockets."""

from __future__ import annotations

import ipaddress

import pytest

from worker.callback_targets import CallbackPolicy, address_kind
from worker.errors import ConfigError
from worker.intake import InvalidMessageError
from worker.intake.arguments import check_callback_url
from worker.settings import load_settings

DEFAULT = CallbackPolicy.parse([])


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("https://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a private address"),
        ("https://127.0.0.1:8080/admin", "127.0.0.1 is a loopback address"),
        ("https://[::1]/", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/", "127.0.0.1 is a loopback address"),
        ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://192.168.0.10/hook", "192.168.0.10 is a private address"),
        ("https://100.64.0.1/hook", "100.64.0.1 is a non-public address"),
        ("https://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
        ("https://localhost:9000/", "localhost is a loopback name"),
        ("https://admin.localhost/", "localhost is a loopback name"),
        ("https://2130706433/", "neither a host name nor an address written in full"),
        ("https://127.1/", "neither a host name nor an address written in full"),
        ("http://hooks.example.com/", "http needs an entry starting with http://"),
    ],
)
def test_the_default_refuses_what_is_not_public_https_and_names_the_setting(
    url: str, said: str
) -> None:
    refusal = DEFAULT.url_refusal(url)
    assert refusal is not None
    assert said in refusal
    if "written in full" not in refusal:
        assert "MAILPIPE_CALLBACK_ALLOWED" in refusal
    assert "\n" not in refusal


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/mailpipe", "https://8.8.8.8:8443/x", "https://h.example./"]
)
def test_the_default_allows_public_https(url: str) -> None:
    assert DEFAULT.url_refusal(url) is None


def test_a_name_is_judged_again_by_the_addresses_it_resolves_to() -> None:
    assert DEFAULT.url_refusal("https://metadata.google.internal/") is None  # only a name yet
    refusal = DEFAULT.address_refusal(
        "https", "metadata.google.internal", 443, ip("169.254.169.254")
    )
    assert refusal == (
        "metadata.google.internal resolves to 169.254.169.254, a link-local address, "
        "and no network in MAILPIPE_CALLBACK_ALLOWED holds it"
    )
    assert DEFAULT.address_refusal("https", "hooks.example.com", 443, ip("93.184.215.14")) is None


def test_an_address_standing_for_a_private_ipv4_one_is_judged_as_that_one() -> None:
    for wrapped in ("::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"):
        assert address_kind(ip(wrapped)) == "link-local"
        assert DEFAULT.address_refusal("https", "x.example", 443, ip(wrapped)) is not None


def test_a_listed_network_allows_its_addresses_and_names_resolving_into_it() -> None:
    policy = CallbackPolicy.parse(["http://127.0.0.0/8", "[fd00::/8]:8443"])
    assert policy.url_refusal("http://127.0.0.1:5000/hook") is None
    assert policy.url_refusal("https://127.0.0.1:5000/hook") is None  # http:// allows https too
    assert policy.address_refusal("http", "receiver.internal", 80, ip("127.0.0.5")) is None
    assert policy.address_refusal("https", "v6.internal", 8443, ip("fd00::1")) is None
    assert policy.address_refusal("https", "v6.internal", 443, ip("fd00::1")) is not None
    assert policy.address_refusal("http", "v6.internal", 8443, ip("fd00::1")) is not None
    # Listing a network allows nothing else: not the public internet, not other private ones.
    assert policy.address_refusal("http", "elsewhere.example", 80, ip("8.8.8.8")) is not None
    assert policy.url_refusal("http://10.0.0.1/") is not None


def test_a_listed_name_allows_public_addresses_only_and_only_that_name() -> None:
    policy = CallbackPolicy.parse(
        ["hooks.example.com:8443", "*.incidents.example", "http://localhost"]
    )
    assert policy.url_refusal("https://hooks.example.com:8443/x") is None
    assert policy.url_refusal("https://hooks.example.com/x") is not None  # another port
    assert policy.url_refusal("https://a.incidents.example/x") is None
    assert policy.url_refusal("https://incidents.example/x") is not None  # *. is below only
    assert policy.url_refusal("https://other.example/x") is not None
    assert policy.url_refusal("https://8.8.8.8/x") is not None  # no * listed
    # A listed name still may not reach a loopback address without its network.
    assert policy.url_refusal("http://localhost:9000/x") is None
    refusal = policy.address_refusal("http", "localhost", 9000, ip("127.0.0.1"))
    assert refusal is not None
    assert "loopback" in refusal


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("ftp://files.example", "the scheme may be https:// or http://"),
        ("10.0.0.1/8", "not a network"),
        ("hooks.example.com:0", "the port must be a number"),
        ("[::1", "a '[' without its ']'"),
        ("under_score.example", "not a host name"),
        ("*.", "not a host name"),
    ],
)
def test_a_bad_entry_stops_the_process_at_start_naming_the_setting(entry: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, callback_allowed=entry)
    assert str(caught.value).startswith("setting MAILPIPE_CALLBACK_ALLOWED")
    assert said in str(caught.value)


def test_the_setting_is_a_comma_separated_list() -> None:
    settings = load_settings(
        _env_file=None, callback_allowed=" *.example.com , http://10.0.0.0/8 ,"
    )
    assert settings.callback_allowed == ("*.example.com", "http://10.0.0.0/8")
    assert settings.callback_policy().url_refusal("http://10.2.3.4/") is None
    assert load_settings(_env_file=None).callback_policy() == DEFAULT


def test_the_intake_refuses_a_target_the_setting_does_not_allow_naming_the_field() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        check_callback_url("http://169.254.169.254/latest/meta-data/", DEFAULT)
    assert caught.value.field == "callback_url"
    assert "MAILPIPE_CALLBACK_ALLOWED" in str(caught.value)
    assert (
        check_callback_url("https://hooks.example.com/x", DEFAULT) == "https://hooks.example.com/x"
    )
    assert check_callback_url(None, DEFAULT) is None


@pytest.mark.parametrize("url", ["http://[x/", "https://[::1/hook", "ftp://files.example/"])
def test_a_url_that_does_not_parse_is_refused_in_one_line_not_raised(url: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        check_callback_url(url, DEFAULT)
    assert str(caught.value) == "callback_url: must be an http or https URL with a host"
    assert DEFAULT.url_refusal(url) == "must be an http or https URL with a host"
