"""Round trip of every stored model on PostGIS and SpatiaLite; migrations match the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import shapely
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from gis.database import alembic_config, make_engine, session_scope, upgrade
from gis.models.base import SRID, Base
from gis.models.events import Event, EventHistory
from gis.models.overlays import Overlay, OverlayAlignment, OverlayUnit
from gis.models.plans import Block, Grid, Plan, PlanLine
from gis.models.staff import Staff, StaffGrid
from gis.models.territories import (
    AdminArea,
    BarrierFeature,
    Building,
    DedicatedArea,
    Facility,
    Territory,
)

POLY = shapely.box(113.30, 23.20, 113.31, 23.21)
LINE = shapely.LineString([(113.30, 23.20), (113.31, 23.21)])
POINT = shapely.Point(113.305, 23.205)
T0 = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def geom(g: shapely.Geometry):  # type: ignore[no-untyped-def]
    return from_shape(g, srid=SRID)


def _populate(engine: Engine) -> dict[str, int]:
    """One row of every model, linked the way the product links them."""
    with session_scope(engine) as s:
        terr = Territory(name="白云示范区", metric_epsg=4547, source="test")
        s.add(terr)
        s.flush()
        s.add_all([
            AdminArea(territory_id=terr.id, code="440111001001", name="景泰社区",
                      level="village", parent_code="440111001", kind="urban",
                      geom=geom(POLY)),
            BarrierFeature(territory_id=terr.id, layer="roads", barrier_class="primary",
                           name="白云大道", geom=geom(LINE)),
            Building(territory_id=terr.id, households=120, population=310, floors=18,
                     height=54.0, use="residential", geom=geom(POLY)),
            Facility(territory_id=terr.id, kind="school", name="景泰小学",
                     geom=geom(POINT)),
            DedicatedArea(territory_id=terr.id, name="白云工业园", kind="industrial",
                          geom=geom(POLY)),
        ])
        plan = Plan(territory_id=terr.id, version=1, status="published",
                    parameters={"min": 300, "max": 500, "seed": 1},
                    report={"n_grids": 1}, note="首版", created_by="planner",
                    published_at=T0)
        s.add(plan)
        s.flush()
        child = Plan(territory_id=terr.id, version=2, parent_id=plan.id)
        grid = Grid(plan_id=plan.id, code="440111001001001", name="景泰社区第1网格",
                    village_code="440111001001", households=412, population=1050,
                    area_m2=51_600.0, compactness=0.71, barrier_share=0.83,
                    radius_m=210.0, boundary_text="东至机场路，南至白云大道，西至…，北至…",
                    flags=["near_target"], flag_reason="crosses 白沙河: 282 households",
                    barrier_inside_m=12.5, geom=geom(POLY))
        s.add_all([child, grid])
        s.flush()
        s.add(Block(plan_id=plan.id, block_no=1, village_code="440111001001",
                    households=412, population=1050, grid_id=grid.id, geom=geom(POLY)))
        s.add(PlanLine(plan_id=plan.id, line_no=0, kind="inferred_street",
                       name="景泰小学旁巷道", village_code="440111001001", width_m=14.5,
                       likeness=0.72, geom=geom(shapely.MultiLineString([LINE]))))
        staff = Staff(territory_id=terr.id, name="李网格", role="grid_worker",
                      phone="13800000000", area_code="440111001001")
        s.add(staff)
        s.flush()
        s.add(StaffGrid(staff_id=staff.id, grid_code=grid.code))
        ev = Event(territory_id=terr.id, plan_id=plan.id, grid_id=grid.id,
                   grid_code=grid.code, category="环境卫生", source="patrol",
                   description="垃圾堆放", reporter="张三", reported_at=T0,
                   idempotency_key="k-1", coord_sys="gcj02", x=113.3105, y=23.2031,
                   flags=["near_boundary"], geom=geom(POINT), deadline_at=T0)
        s.add(ev)
        s.flush()
        s.add(EventHistory(event_id=ev.id, from_status=None, to_status="reported",
                           level="grid", actor="张三", at=T0, reason="上报"))
        overlay = Overlay(territory_id=terr.id, department="公安", name="警格",
                          source="jingge.shp", source_crs="EPSG:4490",
                          field_map={"code": "JGBM", "name": "JGMC"}, created_by="planner")
        s.add(overlay)
        s.flush()
        s.add(OverlayUnit(overlay_id=overlay.id, code="JG01", name="景泰第一警格",
                          source_wkb=shapely.to_wkb(POLY), geom=geom(POLY)))
        s.add(OverlayAlignment(overlay_id=overlay.id, plan_id=plan.id,
                               grid_code=grid.code, unit_code="JG01"))
        return {"territory": terr.id, "plan": plan.id, "grid": grid.id, "event": ev.id}


def test_every_model_round_trips(engine: Engine) -> None:
    ids = _populate(engine)
    with session_scope(engine) as s:
        terr = s.get(Territory, ids["territory"])
        assert terr is not None and terr.name == "白云示范区" and terr.metric_epsg == 4547
        area = s.scalars(select(AdminArea)).one()
        assert (area.code, area.level, area.kind, area.parent_code) == (
            "440111001001", "village", "urban", "440111001")
        assert to_shape(area.geom).equals(POLY)
        road = s.scalars(select(BarrierFeature)).one()
        assert (road.layer, road.barrier_class, road.name) == ("roads", "primary", "白云大道")
        assert to_shape(road.geom).equals(LINE)
        b = s.scalars(select(Building)).one()
        assert (b.households, b.population, b.floors, b.height, b.use) == (
            120, 310, 18, 54.0, "residential")
        f = s.scalars(select(Facility)).one()
        assert to_shape(f.geom).equals(POINT) and f.name == "景泰小学"
        d = s.scalars(select(DedicatedArea)).one()
        assert (d.name, d.kind) == ("白云工业园", "industrial")
        plan = s.get(Plan, ids["plan"])
        assert plan is not None
        assert plan.parameters == {"min": 300, "max": 500, "seed": 1}
        assert plan.report == {"n_grids": 1} and plan.status == "published"
        assert plan.published_at is not None
        assert plan.published_at.replace(tzinfo=UTC) == T0
        child = s.scalars(select(Plan).where(Plan.version == 2)).one()
        assert child.parent_id == plan.id and child.status == "draft"
        grid = plan.grids[0]
        assert grid.code == "440111001001001" and grid.kind == "comprehensive"
        assert grid.flags == ["near_target"] and grid.boundary_text.startswith("东至机场路")
        assert (grid.households, grid.area_m2, grid.compactness) == (412, 51_600.0, 0.71)
        assert (grid.flag_reason, grid.barrier_inside_m) == ("crosses 白沙河: 282 households",
                                                             12.5)
        block = s.scalars(select(Block)).one()
        assert block.grid_id == grid.id and block.households == 412
        line = s.scalars(select(PlanLine)).one()
        assert (line.plan_id, line.line_no, line.kind, line.name, line.width_m,
                line.likeness) == (plan.id, 0, "inferred_street", "景泰小学旁巷道", 14.5, 0.72)
        assert to_shape(line.geom).equals(shapely.MultiLineString([LINE]))
        overlay = s.scalars(select(Overlay)).one()
        assert (overlay.department, overlay.source_crs, overlay.field_map) == (
            "公安", "EPSG:4490", {"code": "JGBM", "name": "JGMC"})
        unit = s.scalars(select(OverlayUnit)).one()
        assert unit.name == "景泰第一警格" and shapely.from_wkb(unit.source_wkb).equals(POLY)
        assert to_shape(unit.geom).equals(POLY)
        aligned = s.scalars(select(OverlayAlignment)).one()
        assert (aligned.plan_id, aligned.grid_code, aligned.unit_code) == (
            plan.id, grid.code, "JG01")
        staff = s.scalars(select(Staff)).one()
        assert staff.role == "grid_worker"
        assert s.scalars(select(StaffGrid.grid_code)).one() == grid.code
        ev = s.get(Event, ids["event"])
        assert ev is not None
        assert (ev.category, ev.source, ev.status, ev.level, ev.coord_sys) == (
            "环境卫生", "patrol", "reported", "grid", "gcj02")
        assert ev.flags == ["near_boundary"] and to_shape(ev.geom).equals(POINT)
        hist = s.scalars(select(EventHistory)).one()
        assert (hist.to_status, hist.actor, hist.reason) == ("reported", "张三", "上报")


def test_spatial_query_uses_stored_geometry(engine: Engine) -> None:
    _populate(engine)
    with engine.connect() as conn:
        inside = conn.execute(select(func.count()).select_from(Grid).where(
            func.ST_Contains(Grid.geom, func.ST_GeomFromText(POINT.wkt, 4326)))
        ).scalar_one()
        outside = conn.execute(select(func.count()).select_from(Grid).where(
            func.ST_Contains(Grid.geom, func.ST_GeomFromText("POINT(100 30)", 4326)))
        ).scalar_one()
    assert (inside, outside) == (1, 0)


def test_constraints_hold(engine: Engine) -> None:
    ids = _populate(engine)
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Grid(plan_id=ids["plan"], code="440111001001001", village_code="x",
                   geom=geom(POLY)))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Building(territory_id=ids["territory"], households=-1, geom=geom(POLY)))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Plan(territory_id=ids["territory"], version=3, status="bogus"))


def test_deleting_a_territory_removes_everything_under_it(engine: Engine) -> None:
    from gis.store import delete_territory

    ids = _populate(engine)
    delete_territory(engine, ids["territory"])  # events hold no foreign key (migration 0006)
    with engine.connect() as conn:
        for model in (AdminArea, Building, Plan, Grid,
                      Block, PlanLine, Event, EventHistory):
            assert conn.execute(select(func.count()).select_from(model)).scalar_one() == 0


def test_every_geometry_column_has_a_spatial_index(engine: Engine) -> None:
    geometry_tables = [t.name for t in Base.metadata.sorted_tables if "geom" in t.c]
    assert len(geometry_tables) == 11
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text(
                "SELECT tablename FROM pg_indexes WHERE indexdef ILIKE '%USING gist (geom)%'"))
        else:
            rows = conn.execute(text(
                "SELECT f_table_name FROM geometry_columns WHERE spatial_index_enabled = 1"))
        indexed = {r[0] for r in rows}
    assert indexed >= set(geometry_tables)


def test_migrations_match_the_models_and_downgrade(engine: Engine) -> None:
    ours = set(Base.metadata.tables)

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        if type_ == "table" and name not in ours:
            return False  # SpatiaLite's own metadata tables
        if (type_ == "foreign_key_constraint" and engine.dialect.name == "sqlite"
                and obj.parent.name == "events"):
            return False  # migration 0006 removes them on PostgreSQL only
        return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include})
        assert compare_metadata(ctx, Base.metadata) == []
    command.downgrade(alembic_config(engine), "base")
    assert not ours & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert ours <= set(inspect(engine).get_table_names())


def test_unreachable_database_is_a_clear_error() -> None:
    from gis.database import ping
    from gis.errors import DatabaseError

    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseError, match="unreachable"):
        ping(engine)
    with pytest.raises(DatabaseError, match="cannot be reached"):
        upgrade(engine)
