"""The OpenAPI document says what the API does: errors are problem details (no FastAPI
HTTPValidationError), and operations have readable, unique ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import link_targets
from fastapi.testclient import TestClient
from signin import client_for

from api.app import create_app
from gis.database import make_engine
from gis.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
def client(spatialite_url: str) -> Iterator[TestClient]:
    engine = make_engine(spatialite_url)
    with client_for(create_app(Settings(database_url=spatialite_url), engine)) as c:
        yield c
    engine.dispose()


def test_errors_are_declared_as_problem_details(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    text = client.get("/openapi.json").text
    assert "HTTPValidationError" not in text and "ValidationError" not in doc[
        "components"]["schemas"]
    errors = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    errors += 1
                    assert response["content"] == {PROBLEM: {"schema": {
                        "$ref": "#/components/schemas/Problem"}}}, (method, path, status)
    assert errors > 60
    # what the server sends for a bad request matches what the document declares
    schema = doc["components"]["schemas"]["Problem"]
    bad = client.get("/plans/1/export.gpkg", params={"encoding": "latin-1"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    _conforms(bad.json(), schema)
    assert bad.json()["errors"][0]["where"] == "query.encoding"
    missing = client.get("/plans/999/export.gpkg")
    assert missing.status_code == 404
    _conforms(missing.json(), schema)


def _conforms(body: dict[str, Any], schema: dict[str, Any]) -> None:
    types = {"string": str, "integer": int, "array": list}
    assert set(schema["required"]) <= set(body)
    for key, value in body.items():
        if key in schema["properties"]:
            assert isinstance(value, types[schema["properties"][key]["type"]]), key


def test_operation_ids_are_readable_and_unique(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*_[a-z0-9_]+", i) for i in ids), ids
    by_path = {(m, p): op["operationId"] for p, ops in doc["paths"].items()
               for m, op in ops.items()}
    assert by_path[("get", "/plans/{plan_id}/export.{fmt}")] == "exports_export"
    assert by_path[("get", "/ogc/collections/{collectionId}/items")] == "ogc_items"
    assert by_path[("get", "/healthz")] == "service_healthz"


def test_lists_link_their_pages_rfc8288(client: TestClient) -> None:
    stranger = TestClient(client.app)
    for _ in range(5):                                     # audit entries to page through
        assert stranger.get("/territories").status_code == 401
    first = client.get("/audit", params={"limit": 2})
    assert first.status_code == 200 and len(first.json()) == 2
    links = link_targets(first.headers["link"])
    assert set(links) == {"next"} and "offset=2" in links["next"] and "limit=2" in links["next"]
    second = client.get(links["next"])
    assert second.status_code == 200
    assert set(link_targets(second.headers["link"])) == {"next", "prev", "first"}
    assert [r["id"] for r in second.json()] != [r["id"] for r in first.json()]
    last = client.get("/audit", params={"limit": 1000})
    assert "link" not in last.headers                      # one page holds everything
