"""Class 7: the sign-in cookie is not a CSRF door. An unsafe request that authenticates by
the cookie alone must come from the service's own pages (Sec-Fetch-Site, else Origin/Referer);
/token and /logout are checked even without a cookie (a cross-site sign-in would swap the
victim's session); bearer and API-key requests are not affected; a body type the API does
not read (text/plain, what a form can send cross-site without asking) is 415. The last test
is the attack itself, in Chromium: a page on another port of the same host."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from browser import free_port, live_server, open_page
from fastapi.testclient import TestClient
from secworld import PASSWORD, World, partitioned, world  # noqa: F401
from sqlalchemy import select

from gis.models.plans import Plan


def _cookie_client(world: World, username: str = "planner-c") -> TestClient:
    world.account(username, "planner", "*")
    client = TestClient(world.app)
    signed = client.post("/token", data={"username": username, "password": PASSWORD})
    assert signed.status_code == 200 and client.cookies.get("gridmap_token")
    return client


def _status(world: World, plan: int) -> str:
    with world.engine.connect() as conn:
        return str(conn.execute(select(Plan.status).where(
            Plan.id == plan)).scalar_one())


def test_cookie_requests_from_another_site_are_refused(world: World) -> None:
    with world.client() as admin:
        draft = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
    victim = _cookie_client(world)
    host = "testserver"
    for headers in ({"Origin": "http://testserver:8081"}, {"Origin": "null"},
                    {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site", "Origin": f"http://{host}"},
                    {"Referer": "http://testserver:9999/attack.html"}):
        answer = victim.post(f"/plans/{draft}/publish", headers=headers)
        assert answer.status_code == 403, (headers, answer.text)
        assert answer.json()["type"] == "/problems/cross-site-request"
        assert _status(world, draft) == "draft"
        assert victim.delete(f"/territories/{world.territory_id}",
                             headers=headers).status_code == 403
    # The service's own pages: same origin, or a client that is no browser at all.
    assert victim.post(f"/plans/{draft}/publish",
                       headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _status(world, draft) == "published"
    second = victim.post(f"/plans/{world.plan_id}/copy").json()["id"]
    assert victim.post(f"/plans/{second}/publish",
                       headers={"Origin": f"http://{host}"}).status_code == 200


def test_bearer_and_api_key_requests_are_not_affected(world: World) -> None:
    world.account("planner-b", "planner", "*")
    with TestClient(world.app) as client:
        token = client.post("/token", data={"username": "planner-b", "password": PASSWORD},
                            headers={"Sec-Fetch-Site": "same-origin"}).json()["access_token"]
        client.cookies.clear()
        cross = {"Origin": "http://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
        draft = client.post(f"/plans/{world.plan_id}/copy",
                            headers={"Authorization": f"Bearer {token}", **cross})
        assert draft.status_code == 201, draft.text
    with world.client() as keyed:
        assert keyed.post(f"/plans/{draft.json()['id']}/publish",
                          headers=cross).status_code == 200


def test_a_cross_site_sign_in_does_not_replace_the_session(world: World) -> None:
    victim = _cookie_client(world, "victim-v")
    before = victim.cookies.get("gridmap_token")
    world.account("attacker-a", "viewer", "*")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://testserver:1"}):
        swapped = victim.post("/token", data={"username": "attacker-a",
                                              "password": PASSWORD}, headers=headers)
        assert swapped.status_code == 403
        assert victim.cookies.get("gridmap_token") == before
        assert victim.post("/logout", headers=headers).status_code == 403
    assert victim.get("/me").json()["username"] == "victim-v"


def test_a_body_type_the_api_does_not_read_is_415(world: World) -> None:
    with world.client() as admin:
        draft = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
        for kind in ("text/plain", "text/plain;charset=UTF-8", "application/xml",
                     "application/octet-stream"):
            answer = admin.post(f"/plans/{draft}/publish", content=b"note=x",
                                headers={"Content-Type": kind})
            assert answer.status_code == 415, (kind, answer.text)
        assert _status(world, draft) == "draft"
        assert admin.post(f"/plans/{draft}/publish").status_code == 200   # no body at all


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_attack_in_chromium_from_another_port(world: World, browser: Any) -> None:
    """The review's attack: the planner is signed in by cookie; a page served from another
    port of the same host auto-submits a text/plain form to publish a plan, then a form to
    /token with the attacker's account. Neither works."""
    with world.client() as admin:
        draft = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
    world.account("planner-p", "planner", "*")
    world.account("attacker-b", "viewer", "*")
    with live_server(world.app, sign_in=False) as running:
        page, _ = open_page(browser, f"{running.url}/login")
        try:
            page.fill("input[name=username]", "planner-p")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{running.url}/")
            session = [c["value"] for c in page.context.cookies()
                       if c["name"] == "gridmap_token"]
            port = free_port()
            _Attacker.page = f"""<!doctype html><html><body>
<form id=a method=post enctype=text/plain action="{running.url}/plans/{draft}/publish"
 target=f1><input name=note value=x></form>
<form id=b method=post action="{running.url}/token" target=f2>
<input name=username value=attacker-b><input name=password value="{PASSWORD}"></form>
<iframe name=f1></iframe><iframe name=f2></iframe>
<script>document.getElementById('a').submit();document.getElementById('b').submit();
</script></body></html>""".encode()
            server = ThreadingHTTPServer(("127.0.0.1", port), _Attacker)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                with page.expect_response(lambda r: r.url.endswith("/token")) as swap, \
                        page.expect_response(lambda r: "/publish" in r.url) as publish:
                    page.goto(f"http://127.0.0.1:{port}/")
                assert publish.value.status in (403, 415)
                assert swap.value.status == 403
            finally:
                server.shutdown()
            assert _status(world, draft) == "draft"
            after = [c["value"] for c in page.context.cookies()
                     if c["name"] == "gridmap_token"]
            assert after == session, "the attacker's sign-in replaced the session"
        finally:
            page.close()
