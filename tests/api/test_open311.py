"""Open311 GeoReport v2 on both backends: the spec's example requests and answers, the
api_key parameter, errors in the spec's form, and a round trip with a plain HTTP client."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from browser import live_server
from fastapi.testclient import TestClient
from signin import account_key

from api.app import create_app
from gis.store import read_layer

#: The fields of a service request in the spec's GET requests.json example.
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code",
                  "description", "agency_responsible", "service_notice", "requested_datetime",
                  "updated_datetime", "expected_datetime", "address", "address_id", "zipcode",
                  "lat", "long", "media_url"}


@pytest.fixture(scope="module")
def env(store: Any) -> Iterator[dict[str, Any]]:
    app = create_app(store.settings, store.engine)
    keys = {"operator": account_key(store.engine, "o311-operator", "operator", "*"),
            "reporter": account_key(store.engine, "o311-reporter", "reporter", "*"),
            "viewer": account_key(store.engine, "o311-viewer", "viewer", "*")}
    buildings = read_layer(store.engine, store.territory_id, "buildings")
    with TestClient(app) as client:
        yield {"app": app, "client": client, "keys": keys, "store": store,
               "buildings": buildings}


def test_services_are_our_categories(env: dict[str, Any]) -> None:
    r = env["client"].get("/open311/v2/services.json", params={"api_key": env["keys"]["viewer"]})
    assert r.status_code == 200
    services = {s["service_code"]: s for s in r.json()}
    assert {"sanitation", "safety_hazard", "dispute"} <= set(services)
    s = services["sanitation"]
    assert s["service_name"] == "环境卫生" and s["metadata"] is False and s["type"] == "realtime"
    assert "no-store" in r.headers["cache-control"]


def test_post_by_lat_long_then_follow(env: dict[str, Any]) -> None:
    """The spec's POST example (a form with api_key, service_code, lat, long, names,
    description) answers [{service_request_id, service_notice, account_id}]."""
    client, store = env["client"], env["store"]
    p = store.grids.iloc[3].geometry.representative_point()
    form = {"api_key": env["keys"]["reporter"], "service_code": "sanitation",
            "lat": str(p.y), "long": str(p.x), "email": "smit222@sfgov.edu",
            "first_name": "三", "last_name": "张", "phone": "13812345678",
            "description": "路边垃圾堆放，无人清理", "device_id": "tt222111"}
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 201, r.text
    (made,) = r.json()
    assert set(made) == {"service_request_id", "service_notice", "account_id"}
    rid = made["service_request_id"]
    assert rid.isdigit() and store.grids.iloc[3]["code"] in made["service_notice"]
    # A reporter may create but not read: 403 in the spec's error form.
    denied = client.get(f"/open311/v2/requests/{rid}.json",
                        params={"api_key": env["keys"]["reporter"]})
    assert denied.status_code == 403
    assert denied.json()[0]["code"] == 403 and "may not" in denied.json()[0]["description"]
    got = client.get(f"/open311/v2/requests/{rid}.json",
                     params={"api_key": env["keys"]["operator"]})
    assert got.status_code == 200, got.text
    (req,) = got.json()
    assert set(req) == REQUEST_FIELDS
    assert req["status"] == "open" and req["service_code"] == "sanitation"
    assert req["lat"] == pytest.approx(p.y) and req["long"] == pytest.approx(p.x)
    assert "13812345678" in req["description"]          # the operator may see it
    masked = client.get(f"/open311/v2/requests/{rid}.json",
                        params={"api_key": env["keys"]["viewer"]}).json()[0]
    assert "13812345678" not in masked["description"]   # a viewer may not
    listed = client.get("/open311/v2/requests.json",
                        params={"api_key": env["keys"]["operator"], "status": "open",
                                "service_code": "sanitation"}).json()
    assert rid in [x["service_request_id"] for x in listed]
    closed = client.get("/open311/v2/requests.json",
                        params={"api_key": env["keys"]["operator"], "status": "closed"}).json()
    assert rid not in [x["service_request_id"] for x in closed]
    by_ids = client.get("/open311/v2/requests.json",
                        params={"api_key": env["keys"]["operator"],
                                "service_request_id": f"{rid},999999"}).json()
    assert [x["service_request_id"] for x in by_ids] == [rid]


def test_post_by_address_string(env: dict[str, Any]) -> None:
    client, b = env["client"], env["buildings"]
    row = b[b["road"].notna()].iloc[10]
    key = env["keys"]["operator"]
    r = client.post("/open311/v2/requests.json",
                    data={"api_key": key, "service_code": "municipal",
                          "address_string": row["address"], "description": "路灯不亮"})
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    req = client.get(f"/open311/v2/requests/{rid}.json", params={"api_key": key}).json()[0]
    assert req["address"] == row["address"] and req["lat"] is not None
    vague = client.post("/open311/v2/requests.json",
                        data={"api_key": key, "service_code": "municipal",
                              "address_string": "不知道在哪里"})
    assert vague.status_code == 201
    uid = vague.json()[0]["service_request_id"]
    assert uid.startswith("u")
    waiting = client.get(f"/open311/v2/requests/{uid}.json", params={"api_key": key}).json()[0]
    assert waiting["status"] == "open" and waiting["lat"] is None
    assert "needs a location" in waiting["status_notes"]


@pytest.mark.parametrize(("form", "status", "words"), [
    ({"service_code": "nope", "lat": "23.25", "long": "113.3"}, 400, "unknown category"),
    ({"lat": "23.25", "long": "113.3"}, 400, "service_code"),
    ({"service_code": "sanitation"}, 400, "address_string"),
    ({"service_code": "sanitation", "lat": "x", "long": "113.3"}, 400, "numbers"),
    ({"service_code": "sanitation", "lat": "23.25"}, 400, "both"),
])
def test_bad_posts_answer_in_the_spec_form(env: dict[str, Any], form: dict[str, str],
                                           status: int, words: str) -> None:
    r = env["client"].post("/open311/v2/requests.json",
                           data={"api_key": env["keys"]["operator"], **form})
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and body[0]["code"] == r.status_code
    assert words in body[0]["description"]


def test_unknown_key_and_request(env: dict[str, Any]) -> None:
    client = env["client"]
    r = client.get("/open311/v2/services.json", params={"api_key": "not-a-key"})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    r = client.get("/open311/v2/requests/999999.json",
                   params={"api_key": env["keys"]["operator"]})
    assert r.status_code == 404 and r.json()[0]["code"] == 404
    r = client.get("/open311/v2/requests.json",
                   params={"api_key": env["keys"]["operator"], "status": "pending"})
    assert r.status_code == 400


def test_round_trip_with_a_plain_http_client(env: dict[str, Any]) -> None:
    """urllib against a real server: POST a form, read the request back."""
    store = env["store"]
    p = store.grids.iloc[5].geometry.representative_point()
    key = env["keys"]["operator"]
    with live_server(env["app"], sign_in=False) as server:
        data = urllib.parse.urlencode({"api_key": key, "service_code": "dispute",
                                       "lat": p.y, "long": p.x,
                                       "description": "邻里噪音纠纷"}).encode()
        post = urllib.request.Request(f"{server.url}/open311/v2/requests.json", data=data,
                                      method="POST")
        with urllib.request.urlopen(post, timeout=30) as answer:
            assert answer.status == 201
            rid = json.loads(answer.read())[0]["service_request_id"]
        url = f"{server.url}/open311/v2/requests/{rid}.json?api_key={key}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            (req,) = json.loads(answer.read())
        assert req["service_code"] == "dispute" and req["description"] == "邻里噪音纠纷"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/open311/v2/services.json", timeout=30)
        assert refused.value.code == 401


def test_reads_are_audited_without_the_key(env: dict[str, Any]) -> None:
    """Reading requests (personal data) is in the audit log; the api_key in the URL is not."""
    from sqlalchemy import select

    from gis.models.accounts import AuditEntry

    key = env["keys"]["operator"]
    r = env["client"].get("/open311/v2/requests.json", params={"api_key": key,
                                                                "status": "open"})
    assert r.status_code == 200
    env["app"].state.audit.flush()
    with env["store"].engine.connect() as conn:
        paths = [p for (p,) in conn.execute(select(AuditEntry.path).where(
            AuditEntry.path.like("/open311/v2/requests.json%")))]
    assert paths and all(key not in p for p in paths)
    assert any("api_key=***" in p and "status=open" in p for p in paths)
