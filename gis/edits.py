"""Edits of draft plans in the store: version check, reads, apply/undo/redo, history, copy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import geopandas as gpd
import pandas as pd
import shapely
from geoalchemy2 import WKBElement
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from gis.errors import Conflict, NotFound, StaleVersion, msg
from gis.models.base import SRID, Base, iso, utcnow
from gis.models.plans import Block, Grid, Plan, PlanEdit, PlanLine
from gis.models.territories import AdminArea, BarrierFeature, DedicatedArea, Territory
from gis.paging import Page, Paged, read_page
from gis.plans import GRID_FIELDS, _py, plan_blocks_query

#: A grid row as edits store and restore it (geometry aside).
GRID_ROW = (*GRID_FIELDS, "locked")
#: History rows that are not edits themselves but undo or redo one.
LOG_OPS = ("undo", "redo")
#: Margin (degrees, about 100 m) around the grids read for an edit.
MARGIN_DEG = 0.001


@dataclass
class Change:
    """What an edit computed: the touched grids' new rows (WGS84, :data:`GRID_ROW`,
    ``reshaped`` and ``flag_reason``), the codes that disappear, and the blocks that
    change grid (block number → new code, and → old code)."""

    op: str
    params: dict[str, Any]
    summary: str
    grids: gpd.GeoDataFrame
    removed: list[str]
    assignment: dict[int, str]
    previous: dict[int, str]


@dataclass
class EditOutcome:
    """A written edit, undo or redo: the plan's new version and the touched grids as stored."""

    plan_id: int
    version: int
    seq: int
    op: str
    summary: str
    grids: gpd.GeoDataFrame
    removed: list[str] = field(default_factory=list)
    target_seq: int | None = None


def _t(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _element(wkb_hex: str) -> WKBElement:
    geom = shapely.set_srid(shapely.from_wkb(bytes.fromhex(wkb_hex)), SRID)
    return WKBElement(shapely.to_wkb(geom, include_srid=True), srid=SRID,
                      extended=True)


def _envelope(bounds: Iterable[float], margin: float = MARGIN_DEG) -> Any:
    x0, y0, x1, y1 = bounds
    box = shapely.box(x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    return func.ST_GeomFromText(box.wkt, SRID)


class PlanReader:
    """Reads of one draft plan inside an edit's transaction."""

    def __init__(self, conn: Connection, plan_id: int) -> None:
        plans, terr = _t(Plan), _t(Territory)
        row = conn.execute(select(plans.c.territory_id, plans.c.parameters,
                                  terr.c.metric_epsg).select_from(
            plans.join(terr, plans.c.territory_id == terr.c.id)).where(
            plans.c.id == plan_id)).one()
        self.conn = conn
        self.plan_id = plan_id
        self.territory_id = int(row.territory_id)
        self.metric_epsg = int(row.metric_epsg)
        self.parameters: dict[str, Any] = dict(row.parameters or {})

    def _grids(self, where: Any) -> gpd.GeoDataFrame:
        table = _t(Grid)
        query = select(table.c.id, *(table.c[f] for f in GRID_ROW),
                       func.ST_AsBinary(table.c.geom).label("wkb")).where(
            table.c.plan_id == self.plan_id, where).order_by(table.c.code)
        frame = pd.DataFrame(self.conn.execute(query).mappings().all(),
                             columns=["id", *GRID_ROW, "wkb"])
        frame["wkb"] = [bytes(b).hex() for b in frame["wkb"]]
        frame["locked"] = frame["locked"].astype(bool)
        frame["flags"] = [list(f or []) for f in frame["flags"]]
        geoms = shapely.from_wkb([bytes.fromhex(b) for b in frame["wkb"]])
        return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")

    def grids(self, codes: Iterable[str]) -> gpd.GeoDataFrame:
        """The stored rows of these grids (with ``id`` and the exact ``wkb``, hex)."""
        return self._grids(_t(Grid).c.code.in_(sorted(set(codes))))

    def grids_on_line(self, wkt: str) -> list[str]:
        """Codes of the grids a line (WKT, WGS84) crosses or touches."""
        table = _t(Grid)
        rows = self.conn.execute(select(table.c.code).where(
            table.c.plan_id == self.plan_id,
            func.ST_Intersects(table.c.geom, func.ST_GeomFromText(wkt, SRID))))
        return sorted(str(r[0]) for r in rows)

    def block_villages(self, block_nos: Iterable[int]) -> dict[int, str]:
        table = _t(Block)
        rows = self.conn.execute(select(table.c.block_no, table.c.village_code).where(
            table.c.plan_id == self.plan_id, table.c.block_no.in_(sorted(set(block_nos)))))
        return {int(b): str(v) for b, v in rows}

    def around(self, villages: Iterable[str]) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
        """The blocks of these villages, and the grids of these villages with two rings of
        grids around them (for the 四至 of their neighbours)."""
        table = _t(Grid)
        own = self._grids(table.c.village_code.in_(sorted(set(villages))))
        ring = own
        for _ in range(2):
            if ring.empty:
                break
            ring = self._grids(func.ST_Intersects(table.c.geom,
                                                  _envelope(ring.total_bounds)))
        grids = pd.concat([own, ring[~ring["code"].isin(own["code"])]], ignore_index=True)
        blocks, codes = _t(Block), dict(zip(own["id"], own["code"], strict=True))
        rows = self.conn.execute(select(
            blocks.c.block_no, blocks.c.village_code, blocks.c.households,
            blocks.c.households_estimated, blocks.c.population, blocks.c.grid_id,
            func.ST_AsBinary(blocks.c.geom).label("wkb")).where(
            blocks.c.plan_id == self.plan_id, blocks.c.grid_id.in_(list(codes))).order_by(
            blocks.c.block_no)).mappings().all()
        frame = pd.DataFrame(rows, columns=["block_no", "village_code", "households",
                                            "households_estimated", "population", "grid_id",
                                            "wkb"])
        geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
        frame["grid_code"] = frame.pop("grid_id").map(codes)
        return (gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}"),
                gpd.GeoDataFrame(grids, geometry="geometry", crs=f"EPSG:{SRID}"))

    def layers_near(self, bounds: Iterable[float]) -> dict[str, gpd.GeoDataFrame]:
        """Barrier layers, dedicated areas and villages (admin areas) near ``bounds``, as
        the engine's layers (WGS84)."""
        env = list(bounds)
        out: dict[str, gpd.GeoDataFrame] = {}
        bar = _t(BarrierFeature)
        rows = self.conn.execute(select(
            bar.c.layer, bar.c["class"], bar.c.name,
            func.ST_AsBinary(bar.c.geom).label("wkb")).where(
            bar.c.territory_id == self.territory_id,
            func.ST_Intersects(bar.c.geom, _envelope(env, 2 * MARGIN_DEG)))).all()
        frame = pd.DataFrame(rows, columns=["layer", "class", "name", "wkb"])
        for layer, part in frame.groupby("layer"):
            out[str(layer)] = gpd.GeoDataFrame(
                part[["class", "name"]].reset_index(drop=True),
                geometry=shapely.from_wkb([bytes(b) for b in part["wkb"]]),
                crs=f"EPSG:{SRID}")
        for name, model, columns in (
                ("dedicated_areas", DedicatedArea, ("name", "kind")),
                ("villages", AdminArea, ("code", "name"))):
            table = model.__table__
            query = select(*(table.c[c] for c in columns),
                           func.ST_AsBinary(table.c.geom).label("wkb")).where(
                table.c.territory_id == self.territory_id,
                func.ST_Intersects(table.c.geom, _envelope(env, 2 * MARGIN_DEG)))
            if name == "villages":
                query = query.where(table.c.level == "village")
            got = pd.DataFrame(self.conn.execute(query).all(), columns=[*columns, "wkb"])
            out[name] = gpd.GeoDataFrame(
                got[list(columns)], geometry=shapely.from_wkb([bytes(b) for b in got["wkb"]]),
                crs=f"EPSG:{SRID}")
        return out

    def used_codes(self, villages: Iterable[str]) -> frozenset[str]:
        """Every grid code any plan of the territory ever gave these villages (history
        included: codes of grids merged away live on in the edits' ``before`` rows)."""
        grids, plans = _t(Grid), _t(Plan)
        rows = self.conn.execute(select(grids.c.code).distinct().select_from(
            grids.join(plans, grids.c.plan_id == plans.c.id)).where(
            plans.c.territory_id == self.territory_id,
            grids.c.village_code.in_(sorted(set(villages)))))
        used = {str(r[0]) for r in rows}
        edits = _t(PlanEdit)
        for (touched,) in self.conn.execute(select(edits.c.grids).select_from(
                edits.join(plans, edits.c.plan_id == plans.c.id)).where(
                plans.c.territory_id == self.territory_id)):
            used.update(str(c) for c in touched or [])
        return frozenset(used)


def used_codes(engine: Engine, plan_id: int, villages: Iterable[str]) -> frozenset[str]:
    """:meth:`PlanReader.used_codes` outside an edit (a stable redraw's new serials)."""
    with engine.connect() as conn:
        return PlanReader(conn, plan_id).used_codes(villages)


def _claim(conn: Connection, plan_id: int, expected: int) -> int:
    """Take the next version of a draft made on ``expected`` (the row stays locked until
    the transaction ends), or say why not."""
    table = _t(Plan)
    done = conn.execute(update(table).where(
        table.c.id == plan_id, table.c.status == "draft", table.c.edit_version == expected)
        .values(edit_version=expected + 1))
    if done.rowcount == 1:
        return expected + 1
    row = conn.execute(select(table.c.status, table.c.edit_version).where(
        table.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    if row.status != "draft":
        raise Conflict(msg(
            f"方案 {plan_id} 已{'发布' if row.status == 'published' else '归档'}，只能编辑草稿；"
            "请先复制",
            f"plan {plan_id} is {row.status}: only drafts are edited; copy it with POST "
            f"/plans/{plan_id}/copy and edit the copy"))
    raise StaleVersion(msg(
        f"方案 {plan_id} 已被他人修改，当前版本 {row.edit_version}；请刷新后重做",
        f"the edit was made on version {expected} of plan {plan_id}, which is now at version "
        f"{row.edit_version}: reload it and redo the edit"), int(row.edit_version))


def _rows(grids: gpd.GeoDataFrame) -> dict[str, dict[str, Any]]:
    out = {}
    for rec in grids.to_dict("records"):
        row = {f: _py(rec[f]) for f in GRID_ROW if f in rec}
        row["flags"] = [str(f) for f in (rec["flags"] or [])]
        row["locked"] = bool(rec["locked"])
        row["wkb"] = rec["wkb"]
        out[str(rec["code"])] = row
    return out


def _apply(conn: Connection, plan_id: int, current: dict[str, Any],
           target: dict[str, Any]) -> None:
    """Bring the plan from state ``current`` to ``target`` (each: grid rows by code, block
    number → code): rows updated in place, new grids inserted, vanished ones deleted."""
    table = _t(Grid)
    codes = set(current["grids"]) | set(target["grids"])
    ids = {str(c): int(i) for i, c in conn.execute(select(table.c.id, table.c.code).where(
        table.c.plan_id == plan_id, table.c.code.in_(sorted(codes))))}
    for code, row in target["grids"].items():
        # (A row recorded before a field existed leaves that field as it is.)
        values = {f: row[f] for f in GRID_ROW if f in row}
        old = current["grids"].get(code)
        if old is None or old["wkb"] != row["wkb"]:
            values["geom"] = _element(row["wkb"])
        if code in ids:
            conn.execute(update(table).where(table.c.id == ids[code]).values(**values))
        else:
            values["geom"] = _element(row["wkb"])
            ids[code] = int(conn.execute(insert(table).values(plan_id=plan_id, **values)
                                         .returning(table.c.id)).scalar_one())
    blocks = _t(Block)
    by_code: dict[str, list[int]] = {}
    for no, code in target["blocks"].items():
        by_code.setdefault(str(code), []).append(int(no))
    for code, nos in by_code.items():
        for start in range(0, len(nos), 1_000):
            conn.execute(update(blocks).where(
                blocks.c.plan_id == plan_id, blocks.c.block_no.in_(nos[start:start + 1_000]))
                .values(grid_id=ids[code]))
    gone = sorted(set(current["grids"]) - set(target["grids"]))
    if gone:
        conn.execute(delete(table).where(table.c.plan_id == plan_id, table.c.code.in_(gone)))


def _next_seq(conn: Connection, plan_id: int) -> int:
    table = _t(PlanEdit)
    last = conn.execute(select(func.max(table.c.seq)).where(
        table.c.plan_id == plan_id)).scalar_one()
    return int(last or 0) + 1


def edit_plan(engine: Engine, plan_id: int, expected: int, compute: Callable[[PlanReader],
              Change], *, author: str | None = None, note: str | None = None) -> EditOutcome:
    """One edit of a draft plan made on version ``expected``, in one transaction: claim the
    next version, let ``compute`` read around and decide, write the touched grids and
    blocks and the history row with what undo needs. Nothing is written on any error."""
    with engine.begin() as conn:
        version = _claim(conn, plan_id, expected)
        reader = PlanReader(conn, plan_id)
        change = compute(reader)
        touched = [str(c) for c in change.grids["code"]]
        stored = _rows(reader.grids([*touched, *change.removed]))
        before = {"grids": stored,
                  "blocks": {str(k): v for k, v in sorted(change.previous.items())}}
        new = change.grids.assign(wkb=[
            stored[str(c)]["wkb"] if not shaped and str(c) in stored else
            shapely.to_wkb(g, hex=True)
            for c, shaped, g in zip(change.grids["code"], change.grids["reshaped"],
                                    change.grids.geometry.to_numpy(), strict=True)])
        after = {"grids": _rows(new),
                 "blocks": {str(k): v for k, v in sorted(change.assignment.items())}}
        _apply(conn, plan_id, before, after)
        edits = _t(PlanEdit)
        conn.execute(update(edits).where(edits.c.plan_id == plan_id, edits.c.state == "undone")
                     .values(state="discarded"))
        seq = _next_seq(conn, plan_id)
        conn.execute(insert(edits).values(
            plan_id=plan_id, seq=seq, op=change.op, params=change.params, state="applied",
            author=author, at=utcnow(), note=note, summary=change.summary,
            version_before=expected, version_after=version,
            grids=sorted({*touched, *change.removed}), before=before, after=after))
        out = reader.grids(touched)
    # What this edit did to a grid it reshaped (out of the band, in parts), for the editor
    # to say; a grid it did not reshape keeps its flags and reason, and warns of nothing.
    shaped = change.grids["reshaped"].fillna(False).astype(bool) if "reshaped" in change.grids \
        else pd.Series(True, index=change.grids.index)
    warnings = dict(zip(change.grids["code"], change.grids["flag_reason"].where(shaped, ""),
                        strict=True))
    out["warning"] = out["code"].map(warnings).fillna("")
    out["flag_reason"] = out["flag_reason"].fillna("")
    return EditOutcome(plan_id, version, seq, change.op, change.summary, out,
                       list(change.removed))


def _step(engine: Engine, plan_id: int, expected: int, which: str, author: str | None,
          note: str | None) -> EditOutcome:
    """Undo the latest applied edit, or redo the earliest undone one."""
    edits = _t(PlanEdit)
    with engine.begin() as conn:
        version = _claim(conn, plan_id, expected)
        stack = select(edits).where(edits.c.plan_id == plan_id, edits.c.op.not_in(LOG_OPS))
        if which == "undo":
            target = conn.execute(stack.where(edits.c.state == "applied")
                                  .order_by(edits.c.seq.desc()).limit(1)).first()
        else:
            target = conn.execute(stack.where(edits.c.state == "undone")
                                  .order_by(edits.c.seq).limit(1)).first()
        if target is None:
            raise Conflict(msg(f"没有可{'撤销' if which == 'undo' else '重做'}的编辑",
                               f"plan {plan_id} has no edit to {which}"))
        src, dst = (target.after, target.before) if which == "undo" else \
            (target.before, target.after)
        _apply(conn, plan_id, src, dst)
        conn.execute(update(edits).where(edits.c.id == target.id).values(
            state="undone" if which == "undo" else "applied"))
        seq = _next_seq(conn, plan_id)
        summary = f"{'撤销' if which == 'undo' else '重做'} #{target.seq}: {target.summary}"
        conn.execute(insert(edits).values(
            plan_id=plan_id, seq=seq, op=which, params={"edit": int(target.seq)},
            state="applied", target_seq=int(target.seq), author=author,
            at=utcnow(), note=note, summary=summary, version_before=expected,
            version_after=version, grids=target.grids, before=None, after=None))
        out = PlanReader(conn, plan_id).grids(list(dst["grids"]))
    out["warning"] = ""
    out["flag_reason"] = out["flag_reason"].fillna("")
    return EditOutcome(plan_id, version, seq, which, summary, out,
                       sorted(set(src["grids"]) - set(dst["grids"])), int(target.seq))


def undo(engine: Engine, plan_id: int, expected: int, *, author: str | None = None,
         note: str | None = None) -> EditOutcome:
    """Restore the touched grids and blocks of the latest applied edit exactly as they were."""
    return _step(engine, plan_id, expected, "undo", author, note)


def redo(engine: Engine, plan_id: int, expected: int, *, author: str | None = None,
         note: str | None = None) -> EditOutcome:
    """Re-apply the earliest undone edit (a new edit after an undo discards the undone)."""
    return _step(engine, plan_id, expected, "redo", author, note)


#: Edit operations stored under an older name: a line edit was "redraw" until it became
#: "reshape" (redraw is the stable re-partition of a whole plan). History rows keep what was
#: written; they are read under today's name.
RENAMED_OPS = {"redraw": "reshape"}


def list_edits(engine: Engine, plan_id: int) -> list[dict[str, Any]]:
    """A plan's history, oldest first: who did what, when, and whether it still holds."""
    return edits_page(engine, plan_id, None).items


def edits_page(engine: Engine, plan_id: int, page: Page | None) -> Paged[dict[str, Any]]:
    """A page of :func:`list_edits` (NotFound for no such plan)."""
    edits = _t(PlanEdit)
    with engine.connect() as conn:
        if conn.execute(select(Plan.id).where(Plan.id == plan_id)).first() \
                is None:
            raise NotFound(f"no plan {plan_id}")
        found = read_page(conn, select(
            edits.c.seq, edits.c.op, edits.c.params, edits.c.state, edits.c.target_seq,
            edits.c.author, edits.c.at, edits.c.note, edits.c.summary, edits.c.version_before,
            edits.c.version_after, edits.c.grids).where(edits.c.plan_id == plan_id)
            .order_by(edits.c.seq), page)
    return found.map(lambda r: {**r._mapping, "op": RENAMED_OPS.get(r.op, r.op),
                                "at": iso(r.at), "grids": list(r.grids or [])})


def copy_plan(engine: Engine, plan_id: int, *, author: str | None = None,
              note: str | None = None) -> int:
    """A new draft with the grids (locks included), blocks and lines (inferred streets) of
    any plan, its parent; the territory's next version. Its edit history starts empty."""
    plans, grids, blocks = (_t(Plan), _t(Grid),
                            _t(Block))
    with engine.begin() as conn:
        src = conn.execute(select(plans).where(plans.c.id == plan_id)).first()
        if src is None:
            raise NotFound(f"no plan {plan_id}")
        last = conn.execute(select(func.max(plans.c.version)).where(
            plans.c.territory_id == src.territory_id)).scalar_one()
        new_id = int(conn.execute(insert(plans).values(
            territory_id=src.territory_id, version=int(last or 0) + 1, status="draft",
            parameters=src.parameters, report=src.report, parent_id=plan_id,
            note=note or f"复制自方案 {plan_id} (copy of plan {plan_id} v{src.version})",
            created_by=author, created_at=utcnow(), edit_version=0,
        ).returning(plans.c.id)).scalar_one())
        cols = [*GRID_ROW, "geom"]
        conn.execute(insert(grids).from_select(
            ["plan_id", *cols],
            select(literal(new_id, Integer).label("plan_id"),
                   *(grids.c[c] for c in cols)).where(grids.c.plan_id == plan_id)))
        old, fresh = grids.alias("old"), grids.alias("fresh")
        conn.execute(insert(blocks).from_select(
            ["plan_id", "block_no", "village_code", "households", "households_estimated",
             "population", "grid_id", "geom"],
            select(literal(new_id, Integer), blocks.c.block_no,
                   blocks.c.village_code, blocks.c.households, blocks.c.households_estimated,
                   blocks.c.population, fresh.c.id, blocks.c.geom).select_from(
                blocks.outerjoin(old, blocks.c.grid_id == old.c.id).outerjoin(
                    fresh, (fresh.c.plan_id == new_id) & (fresh.c.code == old.c.code)))
            .where(blocks.c.plan_id == plan_id)))
        copy_lines(conn, plan_id, new_id)
    return new_id


def copy_lines(conn: Connection, from_plan: int, to_plan: int) -> None:
    """Give plan ``to_plan`` the lines (inferred streets) of ``from_plan``, numbers kept."""
    lines = _t(PlanLine)
    cols = ["line_no", "kind", "name", "village_code", "width_m", "likeness", "geom"]
    conn.execute(insert(lines).from_select(
        ["plan_id", *cols],
        select(literal(to_plan, Integer).label("plan_id"), *(lines.c[c] for c in cols))
        .where(lines.c.plan_id == from_plan)))


def read_plan_blocks(engine: Engine, plan_id: int, *, grid: str | None = None,
                     village: str | None = None) -> gpd.GeoDataFrame:
    """A plan's blocks (WGS84) with their numbers, households and grid code; optionally
    only those of one grid or one village."""
    query = plan_blocks_query(plan_id, grid=grid, village=village)
    with engine.connect() as conn:
        if conn.execute(select(Plan.id).where(Plan.id == plan_id)).first() \
                is None:
            raise NotFound(f"no plan {plan_id}")
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=["block_no", "village_code", "households",
                                      "households_estimated", "population", "grid_code",
                                      "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")
