"""A client generated from the served OpenAPI document (openapi-python-client) works: it
signs in, lists territories (with their paging headers), reads a plan, and gets problem
details for what is wrong."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
from browser import live_server
from conftest import tiny_layers, write_layers

from api.app import create_app
from gis.accounts import add_account
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.models.base import SRID
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory, load_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))


def test_a_generated_client_signs_in_lists_and_reads_a_plan(spatialite_url: str,
                                                            tmp_path: Path) -> None:
    engine = make_engine(spatialite_url)
    gpkg = write_layers(tiny_layers(), tmp_path / "layers", "GPKG")
    territories = [import_territory(engine, read_territory(gpkg), name=name)
                   for name in ("小区域", "第二区域", "第三区域")]
    result = partition_territory(load_territory(engine, territories[0]))
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(SRID)
    plan_id = write_plan(engine, territories[0], grid_table(result), blocks, result.report,
                         {"seed": 0}, note="client plan")
    publish_plan(engine, plan_id)
    add_account(engine, "planner1", "a-long-password", "planner", "*")
    app = create_app(Settings(database_url=spatialite_url), engine)
    try:
        with live_server(app, sign_in=False) as server:
            doc = httpx.get(f"{server.url}/openapi.json").json()
            (tmp_path / "openapi.json").write_text(json.dumps(doc), encoding="utf-8")
            made = subprocess.run([GENERATOR, "generate", "--path",
                                   str(tmp_path / "openapi.json"), "--meta", "none",
                                   "--output-path", str(tmp_path / "gridmap_client")],
                                  capture_output=True, text=True, timeout=300, check=False)
            assert made.returncode == 0, made.stdout + made.stderr
            # Only the binary answers (photos, posters, tiles) are left to the raw response.
            skipped = [line for line in made.stdout.splitlines()
                       if line.startswith("WARNING parsing")]
            assert all(any(what in line for what in ("/photos/", "/posters/", ".mvt"))
                       for line in skipped), skipped
            sys.path.insert(0, str(tmp_path))
            try:
                _use(server.url, plan_id, territories)
            finally:
                sys.path.remove(str(tmp_path))
                for name in [m for m in sys.modules if m.startswith("gridmap_client")]:
                    del sys.modules[name]
    finally:
        engine.dispose()


def _use(url: str, plan_id: int, territories: list[int]) -> None:
    generated = importlib.import_module("gridmap_client")
    models_ = importlib.import_module("gridmap_client.models")
    token_call = importlib.import_module("gridmap_client.api.accounts.accounts_token")
    list_call = importlib.import_module("gridmap_client.api.territories.territories_territories")
    plan_call = importlib.import_module("gridmap_client.api.plans.plans_plan")

    anonymous = generated.Client(base_url=url)
    refused = list_call.sync_detailed(client=generated.AuthenticatedClient(
        base_url=url, token="not-a-token"))
    assert refused.status_code == 401 and isinstance(refused.parsed, models_.Problem)
    wrong = token_call.sync_detailed(client=anonymous, body=models_.BodyAccountsToken(
        username="planner1", password="wrong-password"))
    assert wrong.status_code == 401 and isinstance(wrong.parsed, models_.Problem)

    token = token_call.sync(client=anonymous, body=models_.BodyAccountsToken(
        username="planner1", password="a-long-password"))
    assert isinstance(token, models_.TokenOut) and token.access_token
    signed_in = generated.AuthenticatedClient(base_url=url, token=token.access_token)

    listed = list_call.sync(client=signed_in)
    assert [(t.id, t.name) for t in listed] == list(zip(
        territories, ["小区域", "第二区域", "第三区域"], strict=True))
    page = list_call.sync_detailed(client=signed_in, limit=2)
    assert [t.id for t in page.parsed] == territories[:2]
    assert page.headers["x-total-count"] == "3" and 'rel="next"' in page.headers["link"]
    rest = list_call.sync(client=signed_in, limit=2, offset=2)
    assert [t.id for t in rest] == territories[2:]

    plan = plan_call.sync(client=signed_in, plan_id=plan_id)
    assert isinstance(plan, models_.PlanOut)
    assert (plan.id, plan.territory_id, plan.status) == (plan_id, territories[0], "published")
    missing = plan_call.sync_detailed(client=signed_in, plan_id=999_999)
    assert missing.status_code == 404 and isinstance(missing.parsed, models_.Problem)
    assert missing.parsed.status == 404
