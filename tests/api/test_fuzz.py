"""Schemathesis against the OpenAPI schema, on PostGIS with a published plan: no 500s."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from signin import admin_headers

from api.app import create_app
from api.problems import MEDIA_TYPE as PROBLEM
from api.problems import OPEN311
from data.demo import generate
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table


@pytest.fixture(scope="module")
def fuzzed_app(postgis_server: str, postgis_template: str,
               tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    from conftest import new_postgis_database

    url = new_postgis_database(postgis_server, postgis_template)
    engine = make_engine(url)
    gpkg = generate(5_000, 1).write(tmp_path_factory.mktemp("fuzz") / "territory.gpkg")
    territory = read_territory(gpkg)
    tid = import_territory(engine, territory)
    result = partition_territory(territory)
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    plan = write_plan(engine, tid, grid_table(result), blocks, result.report, {})
    publish_plan(engine, plan)
    return create_app(Settings(database_url=url, max_upload_mb=2), engine)


@pytest.mark.postgis
def test_no_server_errors(fuzzed_app: FastAPI) -> None:
    """Every operation, with generated valid and invalid input: never a 500."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    headers = admin_headers(fuzzed_app.state.engine)
    tried: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            label = f"{case.method} {case.operation.path}"
            response = case.call(headers=headers)
            tried[label] = tried.get(label, 0) + 1
            assert response.status_code < 500, (label, case.path_parameters,
                                                 case.query, response.text[:500])
            if response.status_code >= 400 and case.operation.path.startswith(OPEN311):
                # GeoReport v2 clients read errors in the spec's form: [{code, description}].
                body = response.json()
                assert body[0]["code"] == response.status_code and body[0]["description"], \
                    label
            elif response.status_code >= 400:
                assert response.headers["content-type"][0].startswith(PROBLEM), label

        call()
    assert len(tried) >= 15 and all(n > 0 for n in tried.values()), tried
