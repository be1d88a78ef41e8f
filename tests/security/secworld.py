"""Shared by the security tests (each module imports the fixtures): a small published plan
in a fresh store of each backend, the service over it, and accounts of any role and areas."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from data.demo import generate
from gis.accounts import add_account, create_api_key
from gis.contract import Territory
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Partitioned:
    territory: Territory
    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: dict[str, Any]


@pytest.fixture(scope="session")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Partitioned:
    """A small demo district partitioned once for the session (written into each store)."""
    gpkg = generate(5_000, 11).write(tmp_path_factory.mktemp("sec") / "territory.gpkg")
    territory = read_territory(gpkg)
    result = partition_territory(territory)
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    return Partitioned(territory, grid_table(result).to_crs(4326), blocks, result.report)


def store_plan(engine: Engine, parts: Partitioned, publish: bool = True) -> tuple[int, int]:
    """The territory and a plan of it in the store; (territory id, plan id)."""
    tid = import_territory(engine, parts.territory)
    plan = write_plan(engine, tid, parts.grids, parts.blocks, parts.report, {"seed": 0})
    if publish:
        publish_plan(engine, plan)
    return tid, plan


@dataclass
class World:
    """The service over a store holding one published plan."""

    backend: str
    url: str
    engine: Engine
    app: FastAPI
    settings: Settings
    territory_id: int
    plan_id: int
    grids: gpd.GeoDataFrame
    keys: dict[str, str] = field(default_factory=dict)

    def account(self, username: str, role: str = "admin", areas: str = "*",
                display_name: str | None = None) -> dict[str, str]:
        """Headers of an account (made on first use) with an API key."""
        if username not in self.keys:
            add_account(self.engine, username, PASSWORD, role, areas, display_name)
            self.keys[username] = create_api_key(self.engine, username, "tests")
        return {"X-API-Key": self.keys[username]}

    def client(self, username: str = "sec-admin", role: str = "admin", areas: str = "*",
               **kwargs: Any) -> TestClient:
        return TestClient(self.app, headers=self.account(username, role, areas), **kwargs)

    def point(self, i: int = 0) -> tuple[float, float, str]:
        """A point inside the i-th grid, and the grid's code."""
        p = shapely.point_on_surface(self.grids.geometry.iloc[i])
        return p.x, p.y, str(self.grids["code"].iloc[i])

    @property
    def towns(self) -> list[str]:
        return sorted({str(c)[:9] for c in self.grids["code"]})


def make_world(backend: str, url: str, parts: Partitioned, **settings: Any) -> World:
    config = Settings(database_url=url, escalation_interval_s=0, **settings)
    engine = make_engine(url, **({"connect_args": {"timeout": config.sqlite_busy_timeout_s}}
                                 if backend == "spatialite" else {}))
    tid, plan = store_plan(engine, parts)
    app = create_app(config, engine)
    grids = parts.grids.sort_values("code").reset_index(drop=True)
    return World(backend, url, engine, app, config, tid, plan, grids)


@pytest.fixture
def world(request: pytest.FixtureRequest, db_url: str, partitioned: Partitioned
          ) -> Iterator[World]:
    """A fresh store of each backend with the published plan, and the service started."""
    backend = "postgis" if db_url.startswith("postgresql") else "spatialite"
    built = make_world(backend, db_url, partitioned)
    with TestClient(built.app):   # runs the lifespan: the audit writer thread
        yield built
    built.engine.dispose()


def new_password() -> str:
    return secrets.token_urlsafe(16)


def spatialite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
