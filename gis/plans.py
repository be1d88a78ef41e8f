"""Versioned grid plans in the store: write a partition as a draft, publish, read, compare."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Text,
    cast,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from gis.accounts import within_areas
from gis.codes import starts_with
from gis.database import PgLockNotAvailable, row_by_id
from gis.errors import Conflict, GridmapError, NotFound
from gis.models.base import SRID, iso, utcnow
from gis.models.plans import Block, Grid, Plan, PlanLine
from gis.models.territories import Territory
from gis.paging import Page, Paged, read_page
from gis.store import _wkb

#: The attribute columns of a stored grid, in the order exports use.
GRID_FIELDS = ("code", "name", "village_code", "kind", "households", "households_estimated",
               "population", "area_m2", "compactness", "barrier_share", "radius_m",
               "boundary_text", "flags", "flag_reason", "barrier_inside_m")
#: Grid fields a partition may lack (a plan made before they existed): their stored value.
OPTIONAL_GRID_FIELDS = {"households_estimated": 0, "flag_reason": "", "barrier_inside_m": None}
#: The attribute columns of a plan's stored line (an inferred street), in order.
LINE_FIELDS = ("line_no", "kind", "name", "village_code", "width_m", "likeness")
BLOCK_FIELDS = ("block_no", "village_code", "households", "households_estimated",
                "population", "grid_code")


@dataclass(frozen=True)
class PlanInfo:
    """A plan's row without its grids."""

    id: int
    territory_id: int
    version: int
    status: str
    parameters: dict[str, Any]
    parent_id: int | None
    note: str | None
    created_by: str | None
    created_at: Any
    published_at: Any
    n_grids: int
    #: Edit generation (the ETag of a draft; see gis.edits).
    edit_version: int = 0
    published_by: str | None = None
    publish_note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (iso(v) if k.endswith("_at") else v)
                for k, v in self.__dict__.items()}

    def band(self, default: tuple[int, int]) -> tuple[int, int]:
        """The household band the plan was made for (its parameters), else ``default``."""
        params = self.parameters or {}
        return (int(params.get("min_households", default[0])),
                int(params.get("max_households", default[1])))


def _py(value: Any) -> Any:
    """A numpy scalar as the Python scalar the database driver expects (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_plan(engine: Engine, territory_id: int, grids: gpd.GeoDataFrame,
               blocks: gpd.GeoDataFrame, report: dict[str, Any], parameters: dict[str, Any],
               *, parent_id: int | None = None, note: str | None = None,
               created_by: str | None = None, lines: gpd.GeoDataFrame | None = None,
               finish: Callable[[Connection, int], None] | None = None) -> int:
    """Store a partition (grids and blocks in WGS84) as a new draft plan, in one transaction.
    ``finish(conn, plan_id)`` runs last in that transaction (a job records its end there:
    if it raises, nothing is stored).

    ``grids`` has the columns of :data:`GRID_FIELDS` (``flags`` a list per grid; those of
    :data:`OPTIONAL_GRID_FIELDS` may be missing); ``blocks`` has ``village_code``,
    ``households``, ``population``, ``grid_code`` and optionally ``households_estimated``.
    ``lines``: the partition's inferred streets (any CRS; ``width_m``, ``likeness``,
    ``village_code``, ``name``; ``kind`` defaults to ``inferred_street``; ``line_no`` to
    their order), stored with the plan (see :func:`lines_frame`).
    The plan's version is one more than the territory's last.
    """
    if grids.crs is None or grids.crs.to_epsg() != SRID:
        raise GridmapError("a plan's grids must be in WGS84 (EPSG:4326)")
    line_rows = _line_rows(lines_frame(lines)) if lines is not None else []
    with engine.begin() as conn:
        if conn.execute(select(Territory.id).where(
                Territory.id == territory_id)).first() is None:
            raise NotFound(f"no territory {territory_id}")
        last = conn.execute(select(func.max(Plan.version)).where(
            Plan.territory_id == territory_id)).scalar_one()
        plan_id = int(conn.execute(insert(Plan).values(
            territory_id=territory_id, version=int(last or 0) + 1, status="draft",
            parameters=parameters, report=report, parent_id=parent_id, note=note,
            created_by=created_by, created_at=utcnow(),
        ).returning(Plan.id)).scalar_one())
        grid_ids = _insert_grids(conn, plan_id, grids)
        _insert_blocks(conn, plan_id, blocks, grid_ids)
        insert_lines(conn, plan_id, line_rows)
        if finish is not None:
            finish(conn, plan_id)
    return plan_id


def lines_frame(lines: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A plan's lines as stored: :data:`LINE_FIELDS` and line geometries as MultiLineStrings
    in WGS84 (what is not a line with length is dropped; ``line_no`` numbers them in order
    when not given)."""
    if lines.crs is None and len(lines):
        raise GridmapError("a plan's lines need a coordinate system (the engine's metric "
                           "CRS or WGS84)")
    frame = lines.to_crs(SRID) if lines.crs is not None else \
        lines.set_crs(SRID, allow_override=True)
    multi = np.empty(len(frame), dtype=object)
    for i, geom in enumerate(frame.geometry.to_numpy()):
        parts = [p for p in shapely.get_parts(geom) if p is not None
                 and p.geom_type == "LineString" and p.length > 0] if geom is not None else []
        multi[i] = shapely.MultiLineString(parts) if parts else None
    keep = np.array([g is not None for g in multi], dtype=bool)
    out = pd.DataFrame({
        "line_no": frame["line_no"].to_numpy() if "line_no" in frame
        else np.arange(len(frame)),
        "kind": frame["kind"].to_numpy() if "kind" in frame
        else np.full(len(frame), "inferred_street", dtype=object),
        "name": frame["name"].to_numpy(dtype=object) if "name" in frame
        else np.full(len(frame), None, dtype=object),
        "village_code": frame["village_code"].to_numpy(dtype=object) if "village_code" in frame
        else np.full(len(frame), None, dtype=object),
        "width_m": frame["width_m"].to_numpy(dtype=float) if "width_m" in frame
        else np.full(len(frame), np.nan),
        "likeness": frame["likeness"].to_numpy(dtype=float) if "likeness" in frame
        else np.full(len(frame), np.nan),
    })[keep]
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry=multi[keep],
                            crs=f"EPSG:{SRID}")


def _line_rows(lines: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec, geom in zip(lines[list(LINE_FIELDS)].to_dict("records"),
                         _wkb(lines.geometry.to_numpy()), strict=True):
        row = {k: _py(v) for k, v in rec.items()}
        for key in ("width_m", "likeness"):
            if row[key] is not None:
                row[key] = round(float(row[key]), 2)
        if row["village_code"] is not None:
            row["village_code"] = str(row["village_code"])
        row.update(geom=geom)
        rows.append(row)
    return rows


def add_lines(engine: Engine, plan_id: int, lines: gpd.GeoDataFrame) -> int:
    """Add lines to a stored plan (numbered after its last); how many were added."""
    get_plan(engine, plan_id)
    table = PlanLine.__table__
    with engine.begin() as conn:
        last = conn.execute(select(func.max(table.c.line_no)).where(
            table.c.plan_id == plan_id)).scalar_one()
        frame = lines_frame(lines.drop(columns="line_no", errors="ignore"))
        frame["line_no"] = np.arange(len(frame)) + (int(last) + 1 if last is not None else 0)
        rows = _line_rows(frame)
        insert_lines(conn, plan_id, rows)
    return len(rows)


def insert_lines(conn: Connection, plan_id: int, rows: list[dict[str, Any]]) -> None:
    """Store a plan's lines (rows of :data:`LINE_FIELDS` and ``geom``)."""
    for start in range(0, len(rows), 2_000):
        conn.execute(insert(PlanLine), [{**r, "plan_id": plan_id}
                                        for r in rows[start:start + 2_000]])


def _insert_grids(conn: Connection, plan_id: int, grids: gpd.GeoDataFrame) -> dict[str, int]:
    rows = []
    missing = {k: v for k, v in OPTIONAL_GRID_FIELDS.items() if k not in grids}
    if missing:
        grids = grids.assign(**missing)
    for rec, geom in zip(grids[list(GRID_FIELDS)].to_dict("records"),
                         _wkb(grids.geometry.to_numpy()), strict=True):
        row = {k: _py(v) for k, v in rec.items()}
        flags = rec["flags"]
        row["flags"] = [f for f in flags.split(",") if f] if isinstance(flags, str) \
            else list(flags or [])
        if row["flag_reason"] is None:
            row["flag_reason"] = ""
        row.update(plan_id=plan_id, geom=geom)
        rows.append(row)
    table = Grid.__table__
    for start in range(0, len(rows), 2_000):
        conn.execute(insert(Grid), rows[start:start + 2_000])
    return {code: int(i) for i, code in conn.execute(
        select(table.c.id, table.c.code).where(table.c.plan_id == plan_id))}


def _insert_blocks(conn: Connection, plan_id: int, blocks: gpd.GeoDataFrame,
                   grid_ids: dict[str, int]) -> None:
    geoms = _wkb(blocks.geometry.to_numpy())
    codes = blocks["grid_code"].to_numpy()
    est = blocks["households_estimated"].to_numpy() if "households_estimated" in blocks \
        else np.zeros(len(blocks), dtype=np.int64)
    rows = [{"plan_id": plan_id, "block_no": i, "village_code": str(v),
             "households": int(h), "households_estimated": int(e), "population": int(p),
             "grid_id": grid_ids.get(str(c)), "geom": g}
            for i, (v, h, e, p, c, g) in enumerate(zip(
                blocks["village_code"], blocks["households"], est, blocks["population"],
                codes, geoms, strict=True))]
    for start in range(0, len(rows), 5_000):
        conn.execute(insert(Block), rows[start:start + 5_000])


def _info(conn: Connection, plan: Any) -> PlanInfo:
    n = conn.execute(select(func.count()).select_from(Grid.__table__).where(
        Grid.__table__.c.plan_id == plan.id)).scalar_one()
    return PlanInfo(plan.id, plan.territory_id, plan.version, plan.status,
                    plan.parameters or {}, plan.parent_id, plan.note, plan.created_by,
                    plan.created_at, plan.published_at, int(n), int(plan.edit_version or 0),
                    plan.published_by, plan.publish_note)


def get_plan(engine: Engine, plan_id: int) -> PlanInfo:
    with engine.connect() as conn:
        return _info(conn, row_by_id(conn, Plan.__table__, plan_id, f"no plan {plan_id}"))


def stored_report(engine: Engine, plan_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        report = conn.execute(select(Plan.report).where(
            Plan.id == plan_id)).first()
    if report is None:
        raise NotFound(f"no plan {plan_id}")
    return dict(report[0] or {})


def list_plans(engine: Engine, territory_id: int | None = None) -> list[PlanInfo]:
    return plans_page(engine, None, territory_id=territory_id).items


def plans_page(engine: Engine, page: Page | None, *, territory_id: int | None = None,
               territory_ids: Collection[int] | None = None) -> Paged[PlanInfo]:
    """A page of the plans, by territory then version; ``territory_ids``: only theirs."""
    table = Plan.__table__
    query = select(table).order_by(table.c.territory_id, table.c.version, table.c.id)
    if territory_id is not None:
        query = query.where(table.c.territory_id == territory_id)
    if territory_ids is not None:
        query = query.where(table.c.territory_id.in_(sorted(territory_ids)))
    with engine.connect() as conn:
        return read_page(conn, query, page).map(lambda p: _info(conn, p))


def published_plan_id(engine: Engine, territory_id: int) -> int | None:
    with engine.connect() as conn:
        row = conn.execute(select(Plan.id).where(
            Plan.territory_id == territory_id,
            Plan.status == "published")).first()
    return None if row is None else int(row[0])


_publishing_lock = threading.Lock()
_publishing: set[int] = set()


def _busy(territory_id: int) -> Conflict:
    return Conflict(f"另一个方案正在发布 another plan of territory {territory_id} is being "
                    "published at this moment: only one may be; reload the plans and try "
                    "again if yours should still be the published one")


def locked_codes(engine: Engine, plan_id: int) -> list[str]:
    """The codes of a plan's locked grids, in order."""
    table = Grid.__table__
    with engine.connect() as conn:
        return [str(c) for c in conn.execute(
            select(table.c.code).where(table.c.plan_id == plan_id,
                                       table.c.locked.is_(True)).order_by(table.c.code))
                .scalars()]


def lock_grids(conn: Connection, plan_id: int, codes: Sequence[str]) -> None:
    """Lock these grids of a plan (inside the transaction that writes it)."""
    if codes:
        conn.execute(update(Grid).where(Grid.plan_id == plan_id,
                                        Grid.code.in_(list(codes)))
                     .values(locked=True))


def grid_names(engine: Engine, plan_id: int, *, area: str | None = None,
               areas: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """Code → name of a plan's grids, those under the area code ``area`` and within
    ``areas`` (an account's areas; None or ``*``: every one)."""
    table = Grid.__table__
    query = select(table.c.code, table.c.name).where(table.c.plan_id == plan_id)
    if area is not None:
        query = query.where(starts_with(table.c.code, area))
    clause = within_areas(table.c.code, areas)
    if clause is not None:
        query = query.where(clause)
    with engine.connect() as conn:
        return {str(c): n for c, n in conn.execute(query)}


def published_plans(engine: Engine, territory_id: int | None = None) -> list[Any]:
    """Every territory (or the one given), by id, with its published plan when it has one:
    id, name, metric_epsg, plan_id, version, published_at (the plan's None when none is
    published)."""
    territories, plans = Territory.__table__, Plan.__table__
    query = select(territories.c.id, territories.c.name, territories.c.metric_epsg,
                   plans.c.id.label("plan_id"),
                   plans.c.version, plans.c.published_at).select_from(
        territories.outerjoin(plans, (plans.c.territory_id == territories.c.id)
                              & (plans.c.status == "published"))).order_by(territories.c.id)
    if territory_id is not None:
        query = query.where(territories.c.id == territory_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def publish_plan(engine: Engine, plan_id: int, *, by: str | None = None,
                 note: str | None = None) -> PlanInfo:
    """Make a plan its territory's active plan; the one active before is archived (kept).
    ``by`` and ``note`` record who published it and why.

    Exclusive: while one publish of a territory runs, another gets :class:`Conflict` at
    once (the territory's plans are locked without waiting: ``FOR UPDATE NOWAIT`` on
    PostgreSQL, a per-process guard on SQLite, whose writers the database serializes), and
    the partial unique index ``uq_plans_one_published`` refuses a second published plan
    whatever happens."""
    table = Plan.__table__
    territory_id = get_plan(engine, plan_id).territory_id
    with _publishing_lock:
        if territory_id in _publishing:
            raise _busy(territory_id)
        _publishing.add(territory_id)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT id FROM plans WHERE territory_id = :t ORDER BY id "
                                  "FOR UPDATE NOWAIT"), {"t": territory_id})
            plan = conn.execute(select(table).where(table.c.id == plan_id)).first()
            if plan is None:
                raise NotFound(f"no plan {plan_id}")
            if plan.status == "published":
                raise Conflict(f"plan {plan_id} is already the published plan of territory "
                               f"{plan.territory_id}")
            now = utcnow()
            conn.execute(update(Plan).where(
                Plan.territory_id == plan.territory_id,
                Plan.status == "published").values(status="archived"))
            conn.execute(update(Plan).where(Plan.id == plan_id)
                         .values(status="published", published_at=now, published_by=by,
                                 publish_note=note))
            return _info(conn, conn.execute(select(table).where(table.c.id == plan_id)).one())
    except IntegrityError as exc:  # the index: another publish won the race
        raise _busy(territory_id) from exc
    except DBAPIError as exc:
        if isinstance(exc.orig, PgLockNotAvailable):
            raise _busy(territory_id) from exc
        raise
    finally:
        with _publishing_lock:
            _publishing.discard(territory_id)


def read_grids(engine: Engine, plan_id: int, *, bbox: tuple[float, float, float, float] | None
               = None, village: str | None = None, town: str | None = None,
               flags: list[str] | None = None, areas: tuple[str, ...] | None = None
               ) -> gpd.GeoDataFrame:
    """A plan's grids (WGS84), optionally only those meeting every filter given.

    ``flags``: grids carrying any of these flags; ``["regular"]`` (or an empty
    string) selects grids without flags. ``areas``: grids whose code lies within one of
    these area codes.
    """
    get_plan(engine, plan_id)
    table = Grid.__table__
    query = select(table.c.id, *(table.c[f] for f in GRID_FIELDS),
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(
        table.c.plan_id == plan_id).order_by(table.c.code)
    if village:
        query = query.where(table.c.village_code == village)
    if town:
        query = query.where(starts_with(table.c.village_code, town))
    scope = within_areas(table.c.code, areas)
    if scope is not None:
        query = query.where(scope)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=["id", *GRID_FIELDS, "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    grids = gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")
    if flags:
        wanted = set(flags)
        keep = [bool(set(f or []) & wanted) or (not f and bool({"regular", ""} & wanted))
                for f in grids["flags"]]
        grids = grids[np.asarray(keep, dtype=bool)]
    if bbox is not None:
        box = shapely.box(*bbox)
        grids = grids[shapely.intersects(grids.geometry.to_numpy(), box)]
    return grids.reset_index(drop=True)


def plan_blocks_query(plan_id: int, *, grid: str | None = None, village: str | None = None
                      ) -> Select[Any]:
    """The select of a plan's blocks (number, village, households, population, grid code,
    WKB), by number; optionally only those of one grid or one village."""
    blocks, grids = Block.__table__, Grid.__table__
    query = select(blocks.c.block_no, blocks.c.village_code, blocks.c.households,
                   blocks.c.households_estimated, blocks.c.population,
                   grids.c.code.label("grid_code"),
                   func.ST_AsBinary(blocks.c.geom).label("wkb")).select_from(
        blocks.outerjoin(grids, blocks.c.grid_id == grids.c.id)).where(
        blocks.c.plan_id == plan_id).order_by(blocks.c.block_no)
    if grid:
        query = query.where(grids.c.code == grid)
    if village:
        query = query.where(blocks.c.village_code == village)
    return query


def read_blocks(engine: Engine, plan_id: int) -> gpd.GeoDataFrame:
    """A plan's blocks (WGS84) with households and the code of their grid."""
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(plan_blocks_query(plan_id)).mappings().all(),
                             columns=[*BLOCK_FIELDS, "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")


def flag_counts(engine: Engine, plan_ids: list[int] | None = None
                ) -> dict[int, dict[str, int]]:
    """How many grids of each plan carry each flag (plans without a flagged grid absent)."""
    table = Grid.__table__
    query = select(table.c.plan_id, table.c.flags).where(
        cast(table.c.flags, Text).not_in(["[]", "null"]), table.c.flags.is_not(None))
    if plan_ids is not None:
        query = query.where(table.c.plan_id.in_(plan_ids))
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        for plan_id, flags in conn.execute(query):
            counts = out.setdefault(int(plan_id), {})
            for flag in flags or []:
                counts[str(flag)] = counts.get(str(flag), 0) + 1
    return out


def read_lines(engine: Engine, plan_id: int, *, kind: str | None = None,
               bbox: tuple[float, float, float, float] | None = None,
               areas: tuple[str, ...] | None = None, limit: int | None = None
               ) -> gpd.GeoDataFrame:
    """A plan's lines (WGS84, by number): :data:`LINE_FIELDS`; only those of ``kind``,
    meeting ``bbox`` (by the spatial index), in a village within ``areas``; at most
    ``limit`` (the caller asks for one more than it serves to tell there are too many)."""
    get_plan(engine, plan_id)
    table = PlanLine.__table__
    query = select(*(table.c[f] for f in LINE_FIELDS),
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(
        table.c.plan_id == plan_id).order_by(table.c.line_no)
    if kind:
        query = query.where(table.c.kind == kind)
    scope = within_areas(table.c.village_code, areas)
    if scope is not None:
        query = query.where(scope)
    if bbox is not None:
        query = query.where(func.ST_Intersects(
            table.c.geom, func.ST_GeomFromText(shapely.box(*bbox).wkt, SRID)))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=[*LINE_FIELDS, "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame = frame.astype(object).where(frame.notna(), None)
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")


def plan_diff(engine: Engine, a: int, b: int, metric_epsg: int) -> dict[str, Any]:
    """What changes from plan ``a`` to plan ``b`` of the same territory.

    Grids are matched by code. A grid is *changed* when its households differ or
    its outline moved by more than 1 m² (symmetric difference, in the metric
    CRS). Households that change grid are counted over plan ``b``'s blocks:
    each block's households belonged, in plan ``a``, to the grid covering most
    of the block.
    """
    pa, pb = get_plan(engine, a), get_plan(engine, b)
    if pa.territory_id != pb.territory_id:
        raise Conflict(f"plans {a} and {b} belong to different territories "
                       f"({pa.territory_id} and {pb.territory_id}); only plans of one "
                       "territory can be compared")
    ga = read_grids(engine, a).to_crs(metric_epsg).set_index("code")
    gb = read_grids(engine, b).to_crs(metric_epsg).set_index("code")
    added = sorted(set(gb.index) - set(ga.index))
    removed = sorted(set(ga.index) - set(gb.index))
    common = sorted(set(ga.index) & set(gb.index))
    changed = []
    for code in common:
        ra, rb = ga.loc[code], gb.loc[code]
        moved = float(shapely.area(shapely.symmetric_difference(ra.geometry, rb.geometry)))
        if moved > 1.0 or int(ra.households) != int(rb.households):
            changed.append({"code": code, "households_before": int(ra.households),
                            "households_after": int(rb.households),
                            "area_changed_m2": round(moved, 1)})
    blocks = read_blocks(engine, b).to_crs(metric_epsg)
    moves: dict[tuple[str, str], int] = {}
    if len(blocks) and len(ga):
        geoms_a = ga.geometry.to_numpy()
        codes_a = ga.index.to_numpy()
        tree = shapely.STRtree(geoms_a)
        bi, gi = tree.query(blocks.geometry.to_numpy(), predicate="intersects")
        shared = shapely.area(shapely.intersection(blocks.geometry.to_numpy()[bi], geoms_a[gi]))
        best = pd.DataFrame({"b": bi, "g": gi, "a": shared}).sort_values(
            ["b", "a"], ascending=[True, False]).drop_duplicates("b")
        before = np.full(len(blocks), "", dtype=object)
        before[best["b"].to_numpy()] = codes_a[best["g"].to_numpy()]
        after = blocks["grid_code"].to_numpy()
        hh = blocks["households"].to_numpy()
        for i in np.flatnonzero((before != after) & (hh > 0)):
            key = (str(before[i]), str(after[i]))
            moves[key] = moves.get(key, 0) + int(hh[i])
    return {
        "from_plan": a, "to_plan": b,
        "grids_added": added, "grids_removed": removed, "grids_changed": changed,
        "grids_unchanged": len(common) - len(changed),
        "households_moved": int(sum(moves.values())),
        "moves": [{"from": f or None, "to": t, "households": h}
                  for (f, t), h in sorted(moves.items(), key=lambda kv: -kv[1])],
    }
