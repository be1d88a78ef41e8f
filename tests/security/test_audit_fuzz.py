"""Fuzz: generated paths, query strings and header values (any byte, NUL and non-UTF-8
included) against the service, on both backends. Every request is answered below 500; every
refusal (401/403) and every change by an account is in the audit log; nothing is left
waiting or dropped, and a plain change after all of it is still audited."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import itertools
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secworld import World, partitioned, world  # noqa: F401

from gis import accounts

PREFIXES = ["/plans/{plan}/publish", "/plans/{plan}/copy", "/plans/{plan}", "/events",
            "/events/{plan}/actions", "/territories/{territory}/staff", "/accounts",
            "/audit", "/token", "/logout", "/me", "/tiles/{plan}/14/1/2.mvt", "/x", ""]
HEADERS = ["X-Gridmap-User", "X-API-Key", "Authorization", "Cookie", "Idempotency-Key",
           "Origin", "Sec-Fetch-Site", "If-Match", "If-None-Match", "Content-Type", "Accept",
           "Referer", "X-Forwarded-For", "X-Fuzz"]
#: Header bytes a client can put on the wire (no CR, LF or NUL, which HTTP parsers refuse
#: before any application sees them).
HEADER_BYTES = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c not in (0, 10, 13)))
counter = itertools.count()


@settings(max_examples=120, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
       prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=40),
       query=st.binary(max_size=40),
       headers=st.dictionaries(st.sampled_from(HEADERS), HEADER_BYTES, max_size=4),
       signed_in=st.booleans())
def _one(world: World, method: str, prefix: str, tail: bytes, query: bytes,
         headers: dict[str, bytes], signed_in: bool) -> None:
    n = next(counter)
    path = prefix.format(plan=world.plan_id, territory=world.territory_id)
    if tail:
        path += "/" + quote_from_bytes(tail, safe="")
    url = f"{path or '/'}?fuzz={n}&q={quote_from_bytes(query, safe='')}"
    sent = {k: v for k, v in headers.items()}
    if signed_in:
        sent = {k: v for k, v in sent.items() if k.lower() not in ("x-api-key",
                                                                    "authorization")}
        sent["X-API-Key"] = world.keys["fuzz-admin"].encode()
    with world.client("fuzz-admin") as client:
        client.headers.clear()
        answer = client.request(method, url, headers=sent)
    assert answer.status_code < 500, (method, url, sent, answer.text[:300])
    # A change by an account reaches its route (not 404/405 for no route, not 415 for a body
    # type no route reads); sign-in and sign-out record themselves under their own names.
    change = signed_in and method != "GET" and answer.status_code not in (404, 405, 415) \
        and prefix not in ("/token", "/logout")
    if answer.status_code in (401, 403) or change:
        world.app.state.audit.flush()
        rows = accounts.read_audit(world.engine, limit=5)
        assert any(f"fuzz={n}&" in r["path"] for r in rows), (method, url, answer.status_code)


def test_fuzzed_requests_are_audited_or_refused_and_never_block_the_log(world: World
                                                                        ) -> None:
    world.account("fuzz-admin")
    _one(world)
    log = world.app.state.audit
    log.flush()
    assert log.pending() == 0
    assert log.health()["dropped"] == 0
    with world.client("fuzz-admin") as client:
        assert client.post(f"/plans/{world.plan_id}/copy").status_code == 201
    log.flush()
    last = accounts.read_audit(world.engine, limit=1)[0]
    assert last["path"] == f"/plans/{world.plan_id}/copy" and last["status"] == 201
