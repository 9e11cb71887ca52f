"""API keys as pure rules: what a key may use and see, and how a request presents it.

No server: the ``Caller`` a key becomes, and the 401s of ``ApiKeys.caller``.
"""

from __future__ import annotations

import base64
import string

import pytest

from worker.faces.http.keys import ANYONE, ApiKeys, Caller, digest, new_key
from worker.faces.http.problems import Problem
from worker.settings import ApiKeySpec

OPS_KEY = "mp_" + "o" * 43
ADMIN_KEY = "mp_" + "a" * 43
OPS = ApiKeySpec(name="ops", sha256=digest(OPS_KEY), profiles=("alerts",), routes=("oncall",))
ADMIN = ApiKeySpec(name="auditor", sha256=digest(ADMIN_KEY), admin=True)
KEYS = ApiKeys([OPS, ADMIN])
OPS_CALLER = Caller(
    name="ops", profiles=frozenset({"alerts"}), routes=frozenset({"oncall"}), admin=False
)
REQUIRED = (
    "an API key is required: 'Authorization: Bearer KEY', HTTP basic auth with "
    "the key as password, or ?api_key=KEY"
)


def basic(userinfo: bytes) -> str:
    return "Basic " + base64.b64encode(userinfo).decode()


def refusal(authorization: str | None, query_key: str | None = None) -> Problem:
    with pytest.raises(Problem) as raised:
        KEYS.caller(authorization, query_key)
    return raised.value


# -- new keys and their digests ---------------------------------------------------------------


def test_a_new_key_is_the_prefix_and_32_random_bytes_in_url_safe_base64() -> None:
    key = new_key()
    assert key.startswith("mp_")
    body = key.removeprefix("mp_")
    assert len(body) == 43  # 32 bytes, unpadded base64
    assert set(body) <= set(string.ascii_letters + string.digits + "-_")
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert new_key() != key


def test_a_key_is_kept_as_the_hex_sha256_of_its_utf8_text() -> None:
    # The SHA-256 test vector of "abc" (FIPS 180-2, appendix B.1).
    assert digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    # Of the UTF-8 bytes c3 a9.
    assert digest("é") == "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"


def test_a_new_key_is_accepted_by_its_digest() -> None:
    key = new_key()
    keys = ApiKeys([ApiKeySpec(name="fresh", sha256=digest(key), admin=True)])
    assert keys.caller(f"Bearer {key}", None).name == "fresh"


# -- what a caller may use and see -----------------------------------------------------------


def test_a_key_sends_as_the_profiles_and_through_the_routes_it_lists_and_no_others() -> None:
    assert OPS_CALLER.may_send_as("alerts")
    assert not OPS_CALLER.may_send_as("billing")
    assert OPS_CALLER.may_use_route("oncall")
    assert not OPS_CALLER.may_use_route("alerts")  # a profile's name is no route
    assert not OPS_CALLER.may_send_as("oncall")  # nor a route's a profile
    bare = Caller(name="bare")
    assert not bare.may_send_as("alerts") and not bare.may_use_route("oncall")


def test_a_star_grants_every_profile_or_every_route_apart() -> None:
    profiles = Caller(name="p", profiles=frozenset({"*"}))
    assert profiles.may_send_as("anything")
    assert not profiles.may_use_route("anything")
    routes = Caller(name="r", routes=frozenset({"*"}))
    assert routes.may_use_route("anything")
    assert not routes.may_send_as("anything")


def test_check_profile_and_check_route_refuse_with_a_403_naming_what_was_refused() -> None:
    OPS_CALLER.check_profile("alerts")
    OPS_CALLER.check_route("oncall")
    with pytest.raises(Problem) as raised:
        OPS_CALLER.check_profile("billing")
    refused = raised.value
    assert (refused.status, refused.title, refused.detail) == (
        403,
        "Forbidden",
        "this API key may not send as profile 'billing'",
    )
    with pytest.raises(Problem) as raised:
        OPS_CALLER.check_route("pager")
    refused = raised.value
    assert (refused.status, refused.title, refused.detail) == (
        403,
        "Forbidden",
        "this API key may not use route 'pager'",
    )


def test_a_limited_key_sees_its_own_jobs_and_no_others() -> None:
    assert OPS_CALLER.may_see("ops")
    assert not OPS_CALLER.may_see("auditor")
    assert not OPS_CALLER.may_see(None)  # made without a key: the CLI, the relay


def test_an_admin_key_sees_every_job_and_a_nameless_caller_only_as_admin() -> None:
    admin = Caller(name="auditor", admin=True)
    assert admin.may_see("ops") and admin.may_see(None)
    assert ANYONE.may_see(None) and ANYONE.may_see("ops")
    assert not Caller(name=None).may_see(None)


def test_reachable_profiles_are_those_listed_and_those_behind_a_usable_route_sorted() -> None:
    profiles = ["zeta", "graph", "beta", "alerts"]
    routes = {"oncall": "graph", "billing": "beta"}
    assert OPS_CALLER.reachable(profiles, routes) == ["alerts", "graph"]
    assert Caller(name="bare").reachable(profiles, routes) == []
    assert Caller(name="auditor", admin=True).reachable(profiles, routes) == [
        "alerts",
        "beta",
        "graph",
        "zeta",
    ]
    # A route to a profile not offered adds none.
    assert OPS_CALLER.reachable(["zeta"], {"oncall": "gone"}) == []


def test_usable_profiles_and_routes_are_the_known_ones_the_key_may_use_sorted() -> None:
    wide = Caller(name="w", profiles=frozenset({"b", "a"}), routes=frozenset({"*"}))
    assert wide.usable_profiles(["c", "b", "a"]) == ["a", "b"]
    assert wide.usable_routes(["y", "x"]) == ["x", "y"]
    assert OPS_CALLER.usable_routes(["pager", "oncall"]) == ["oncall"]


# -- how a request presents its key ----------------------------------------------------------


def test_without_keys_configured_everyone_is_the_admin() -> None:
    assert not ApiKeys([]).required
    assert KEYS.required
    assert ApiKeys([]).caller(None, None) is ANYONE


def test_a_key_becomes_the_caller_its_spec_describes() -> None:
    assert KEYS.caller(f"Bearer {OPS_KEY}", None) == OPS_CALLER
    assert KEYS.caller(f"Bearer {ADMIN_KEY}", None) == Caller(name="auditor", admin=True)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {OPS_KEY}",
        f"bearer {OPS_KEY}",
        f"Bearer  {OPS_KEY} ",
        basic(f"webhook:{OPS_KEY}".encode()),
        basic(f":{OPS_KEY}".encode()),
        "basic " + basic(f"u:{OPS_KEY}".encode()).removeprefix("Basic "),
        basic(f"u:{OPS_KEY}".encode()) + " ",
    ],
)
def test_a_key_is_taken_from_bearer_or_the_password_of_basic_auth(authorization: str) -> None:
    assert KEYS.caller(authorization, None).name == "ops"


def test_a_query_key_is_taken_before_the_header() -> None:
    assert KEYS.caller(None, OPS_KEY).name == "ops"
    assert KEYS.caller(f"Bearer {ADMIN_KEY}", OPS_KEY).name == "ops"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer   ",
        f"Token {OPS_KEY}",
        OPS_KEY,
        basic(b"webhook:"),  # no password
        basic(OPS_KEY.encode()),  # no colon: a user name, no password
        "Basic !!!",  # not base64
        basic(b"u:\xff\xfe"),  # not UTF-8
    ],
)
def test_a_request_without_a_key_gets_a_401_that_says_how_to_give_one(
    authorization: str | None,
) -> None:
    refused = refusal(authorization)
    assert (refused.status, refused.title, refused.detail) == (401, "Unauthorized", REQUIRED)
    assert refused.headers == {"WWW-Authenticate": 'Bearer realm="mailpipe"'}


def test_malformed_basic_credentials_are_no_key_even_if_a_lenient_decoder_found_one() -> None:
    encoded = base64.b64encode(f"u:{OPS_KEY}".encode()).decode()
    # A character outside base64 that a lenient decoder would skip.
    assert refusal(f"Basic {encoded[:4]}!{encoded[4:]}").detail == REQUIRED


@pytest.mark.parametrize(
    ("authorization", "query_key"),
    [
        ("Bearer mp_not-a-key", None),
        (basic(b"u:mp_not-a-key"), None),
        (None, "mp_not-a-key"),
        (f"Bearer {OPS_KEY}x", None),
    ],
)
def test_a_wrong_key_gets_a_401_invalid_token(
    authorization: str | None, query_key: str | None
) -> None:
    refused = refusal(authorization, query_key)
    assert (refused.status, refused.title, refused.detail) == (
        401,
        "Unauthorized",
        "the API key is not valid",
    )
    assert refused.headers == {"WWW-Authenticate": 'Bearer realm="mailpipe", error="invalid_token"'}
