"""Editing a copy of the demo plan over HTTP on both backends: every operation, refusals,
byte-exact undo, redo, history, and two truly concurrent edits against a live server."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely
from browser import live_server
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from api.app import create_app
from gis.band import DEFAULT_BAND, classify
from gis.edits import GRID_ROW, read_plan_blocks
from gis.models.plans import Block, Grid, Plan, PlanEdit
from gis.plans import read_grids
from partitioning.flags import CROSSING_M

USER = {"X-Gridmap-User": quote("planner-王")}


@pytest.fixture
def draft(client: TestClient, store: DemoStore) -> int:
    """A fresh draft: a copy of the published demo plan."""
    r = client.post(f"/plans/{store.plan_id}/copy", headers=USER, json={"note": "试编辑"})
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"0"' and r.json()["status"] == "draft"
    assert r.json()["parent_id"] == store.plan_id and r.json()["created_by"] == "planner-王"
    return int(r.json()["id"])


def state(engine: Engine, plan_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """Every stored grid row (with the geometry's WKB) and every block's grid code."""
    grids, blocks = Grid.__table__, Block.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(*(grids.c[f] for f in GRID_ROW),
                                   func.ST_AsBinary(grids.c.geom)).where(
            grids.c.plan_id == plan_id).order_by(grids.c.code)).all()
        assigned = conn.execute(select(blocks.c.block_no, grids.c.code).select_from(
            blocks.join(grids, blocks.c.grid_id == grids.c.id)).where(
            blocks.c.plan_id == plan_id).order_by(blocks.c.block_no)).all()
    return ([(*r[:-1], bytes(r[-1])) for r in rows], [(int(b), str(c)) for b, c in assigned])


def edit(client: TestClient, plan_id: int, version: int, body: dict[str, Any]
         ) -> httpx.Response:
    return client.post(f"/plans/{plan_id}/edits", json=body,
                       headers={"If-Match": f'"{version}"', **USER})


def version_of(client: TestClient, plan_id: int) -> int:
    r = client.get(f"/plans/{plan_id}")
    assert r.headers["ETag"] == f'"{r.json()["edit_version"]}"'
    return int(r.json()["edit_version"])


def candidates(store: DemoStore, plan_id: int) -> list[tuple[int, str, str]]:
    """(block, its grid, a neighbouring grid of the same village and kind) for every block
    on a shared edge, the longest edges first."""
    grids = read_grids(store.engine, plan_id).to_crs(store.metric_epsg)
    grids = grids[grids["kind"] == "comprehensive"].reset_index(drop=True)
    blocks = read_plan_blocks(store.engine, plan_id).to_crs(store.metric_epsg)
    tree = shapely.STRtree(grids.geometry.to_numpy())
    bi, gi = tree.query(blocks.geometry.to_numpy(), predicate="intersects")
    out = []
    for b, g in zip(bi, gi, strict=True):
        block, grid = blocks.iloc[b], grids.iloc[g]
        if block.grid_code == grid.code or block.village_code != grid.village_code or \
                block.grid_code not in set(grids["code"]):
            continue
        shared = shapely.length(shapely.intersection(block.geometry.boundary,
                                                     grid.geometry.boundary))
        if shared > 5:
            out.append((float(shared), int(block.block_no), str(block.grid_code),
                        str(grid.code)))
    out.sort(reverse=True)
    return [(b, src, dst) for _, b, src, dst in out]


def first_move(client: TestClient, store: DemoStore, plan_id: int, version: int
               ) -> tuple[httpx.Response, tuple[int, str, str]]:
    """The first candidate move the service accepts (a refused one changes nothing)."""
    for block, src, dst in candidates(store, plan_id):
        r = edit(client, plan_id, version, {"op": "move", "blocks": [block], "to": dst})
        if r.status_code == 200:
            return r, (block, src, dst)
        assert r.status_code == 422, r.text
        assert version_of(client, plan_id) == version
    raise AssertionError("no block of the demo plan can move")


def households(engine: Engine, plan_id: int) -> int:
    return int(read_grids(engine, plan_id)["households"].sum())


def test_move_answers_the_touched_grids_and_is_in_the_history(
        client: TestClient, store: DemoStore, draft: int) -> None:
    total = households(store.engine, draft)
    before = read_grids(store.engine, draft).set_index("code")
    r, (block, src, dst) = first_move(client, store, draft, 0)
    assert r.headers["ETag"] == '"1"' and r.json()["version"] == 1
    features = {f["id"]: f["properties"] for f in r.json()["grids"]["features"]}
    assert {src, dst} <= set(features)
    moved = int(read_plan_blocks(store.engine, draft, grid=dst).set_index("block_no")
                .loc[block, "households"])
    assert features[dst]["households"] == before.loc[dst, "households"] + moved
    assert features[src]["households"] == before.loc[src, "households"] - moved
    for props in features.values():
        assert "东至" in props["boundary_text"] and props["area_m2"] > 0
        assert props["locked"] is False and isinstance(props["flag_reason"], str)
    assert households(store.engine, draft) == total
    after = read_grids(store.engine, draft).set_index("code")
    untouched = sorted(set(after.index) - set(features))
    assert after.loc[untouched, "households"].equals(before.loc[untouched, "households"])
    assert version_of(client, draft) == 1
    history = client.get(f"/plans/{draft}/edits").json()
    assert [(h["seq"], h["op"], h["state"], h["author"]) for h in history] == [
        (1, "move", "applied", "planner-王")]
    assert history[0]["params"] == {"blocks": [block], "to": dst}
    assert set(history[0]["grids"]) == set(features)


def test_refusals(client: TestClient, store: DemoStore, draft: int) -> None:
    moves = candidates(store, draft)
    block, src, dst = moves[0]
    body = {"op": "move", "blocks": [block], "to": dst}
    r = client.post(f"/plans/{draft}/edits", json=body)
    assert r.status_code == 428 and "If-Match" in r.json()["detail"]
    # Nesting: a grid of another village.
    grids = read_grids(store.engine, draft)
    village = grids.set_index("code").loc[src, "village_code"]
    other = str(grids[grids["village_code"] != village]["code"].iloc[0])
    r = edit(client, draft, 0, {"op": "move", "blocks": [block], "to": other})
    assert r.status_code == 422 and "跨村" in r.json()["detail"], r.text
    assert r.json()["type"] == "/problems/edit-refused"
    # Contiguity: a grid of the same village that the block does not touch.
    blocks = read_plan_blocks(store.engine, draft).set_index("block_no")
    far_moves = []
    for b, s, d in moves:
        same = grids[(grids["village_code"] == blocks.loc[b, "village_code"])
                     & ~grids["code"].isin([s, d]) & (grids["kind"] == "comprehensive")]
        same = same[~shapely.intersects(same.geometry.to_numpy(), blocks.loc[b].geometry)]
        if len(same):
            far_moves.append((b, str(same["code"].iloc[0])))
    assert far_moves, "some village of the demo has a grid a boundary block does not touch"
    far_block, far_code = far_moves[0]
    r = edit(client, draft, 0, {"op": "move", "blocks": [far_block], "to": far_code})
    assert r.status_code == 422 and "不再连通" in r.json()["detail"], r.text
    # Merge of grids in different villages, of grids that do not touch.
    r = edit(client, draft, 0, {"op": "merge", "grids": [src, other]})
    assert r.status_code == 422 and "different villages" in r.json()["detail"]
    # Locked.
    r = edit(client, draft, 0, {"op": "lock", "grids": [dst]})
    assert r.status_code == 200 and r.json()["grids"]["features"][0]["properties"]["locked"]
    r = edit(client, draft, 1, body)
    assert r.status_code == 409 and "已锁定" in r.json()["detail"]
    assert r.json()["type"] == "/problems/grid-locked"
    # Stale: the version the client saw is old.
    r = edit(client, draft, 0, body)
    assert r.status_code == 409 and r.json()["current_version"] == 1
    assert r.headers["ETag"] == '"1"' and r.json()["type"] == "/problems/stale-version"
    # Only drafts: the published plan is copied first.
    r = edit(client, store.plan_id, 0, body)
    assert r.status_code == 409 and f"/plans/{store.plan_id}/copy" in r.json()["detail"]
    assert version_of(client, draft) == 1          # nothing refused was written
    r = client.post(f"/plans/{draft}/redo", headers={"If-Match": '"1"'})
    assert r.status_code == 409 and "redo" in r.json()["detail"]


def test_grids_and_edit_answers_carry_each_grids_class_against_the_plans_own_band(
        client: TestClient, store: DemoStore, draft: int) -> None:
    # The pages colour grids by band_class: the server's one rule, with the band the plan
    # was made for (here narrowed to 380–420, so that many grids change class).
    band = (380, 420)
    with store.engine.begin() as conn:
        params = conn.execute(select(Plan.parameters).where(
            Plan.id == draft)).scalar_one()
        conn.execute(update(Plan).where(Plan.id == draft).values(
            parameters={**params, "min_households": band[0], "max_households": band[1]}))
    features = client.get(f"/plans/{draft}/grids").json()["features"]
    got = [f["properties"]["band_class"] for f in features]
    assert got == [classify(f["properties"]["kind"], f["properties"]["households"], band)
                   for f in features]
    assert {"below", "in_band", "above"} <= set(got)
    assert any(c != classify(f["properties"]["kind"], f["properties"]["households"],
                             DEFAULT_BAND) for c, f in zip(got, features, strict=True))
    r, _ = first_move(client, store, draft, 0)
    answered = [f["properties"] for f in r.json()["grids"]["features"]]
    assert [p["band_class"] for p in answered] == \
        [classify(p["kind"], p["households"], band) for p in answered]


def test_undo_restores_byte_identical_grids_and_redo_reapplies(
        client: TestClient, store: DemoStore, draft: int) -> None:
    start = state(store.engine, draft)
    total = households(store.engine, draft)
    r, (_, src, dst) = first_move(client, store, draft, 0)
    r = edit(client, draft, 1, {"op": "merge", "grids": [src, dst]})
    assert r.status_code == 200, r.text
    kept, removed = r.json()["grids"]["features"][0]["id"], r.json()["removed"]
    assert len(removed) == 1 and kept not in removed and kept in (src, dst)
    assert households(store.engine, draft) == total
    r = edit(client, draft, 2, {"op": "split", "grid": kept, "k": 2})
    assert r.status_code == 200, r.text
    codes = {f["id"] for f in r.json()["grids"]["features"]}
    new = sorted(codes - {src, dst} - set(read_grids(store.engine, store.plan_id)["code"]))
    assert len(new) == 1 and new[0] not in (src, dst)           # a new serial, not reused
    assert int(new[0][-3:]) > max(int(c[-3:]) for c in read_grids(
        store.engine, store.plan_id)["code"] if c[:12] == new[0][:12] and int(c[-3:]) < 901)
    assert households(store.engine, draft) == total
    r = edit(client, draft, 3, {"op": "rename", "grid": kept, "name": "景泰东网格"})
    assert r.status_code == 200
    edited = state(store.engine, draft)
    for version in (4, 5, 6, 7):
        r = client.post(f"/plans/{draft}/undo", headers={"If-Match": f'"{version}"', **USER})
        assert r.status_code == 200, r.text
        assert households(store.engine, draft) == total
    assert state(store.engine, draft) == start
    for version in (8, 9, 10, 11):
        r = client.post(f"/plans/{draft}/redo", headers={"If-Match": f'"{version}"'})
        assert r.status_code == 200, r.text
    assert state(store.engine, draft) == edited
    history = client.get(f"/plans/{draft}/edits").json()
    assert [h["op"] for h in history] == ["move", "merge", "split", "rename", *["undo"] * 4,
                                          *["redo"] * 4]
    assert [h["state"] for h in history[:4]] == ["applied"] * 4
    assert [h["target_seq"] for h in history[4:]] == [4, 3, 2, 1, 1, 2, 3, 4]
    # A new edit after an undo discards what could have been redone.
    client.post(f"/plans/{draft}/undo", headers={"If-Match": '"12"'})
    r = edit(client, draft, 13, {"op": "lock", "grids": [kept]})
    assert r.status_code == 200
    states = {h["seq"]: h["state"] for h in client.get(f"/plans/{draft}/edits").json()}
    assert states[4] == "discarded"


def test_reshape_moves_the_blocks_beyond_the_line(client: TestClient, store: DemoStore,
                                                 draft: int) -> None:
    grids = read_grids(store.engine, draft).set_index("code")
    blocks = read_plan_blocks(store.engine, draft).set_index("block_no")
    total = households(store.engine, draft)
    for block, src, dst in candidates(store, draft)[:40]:
        union = shapely.union(grids.loc[src].geometry, grids.loc[dst].geometry)
        side = shapely.union(grids.loc[dst].geometry, blocks.loc[block].geometry)
        line = shapely.line_merge(shapely.intersection(side.boundary, union))
        if not isinstance(line, shapely.LineString):
            continue
        # Stretch the ends a little beyond the union's edge.
        xy = np.asarray(line.coords)
        ends = [xy[0] + (xy[0] - xy[1]) / np.hypot(*(xy[0] - xy[1])) * 1e-4,
                xy[-1] + (xy[-1] - xy[-2]) / np.hypot(*(xy[-1] - xy[-2])) * 1e-4]
        coords = [list(ends[0]), *xy.tolist(), list(ends[1])]
        r = edit(client, draft, 0, {"op": "reshape", "line": coords, "grids": [src, dst]})
        if r.status_code == 422:
            continue
        assert r.status_code == 200, r.text
        props = {f["id"]: f["properties"] for f in r.json()["grids"]["features"]}
        moved = int(blocks.loc[block, "households"])
        assert props[dst]["households"] == grids.loc[dst, "households"] + moved
        assert households(store.engine, draft) == total
        assert read_plan_blocks(store.engine, draft).set_index("block_no").loc[
            block, "grid_code"] == dst
        # "redraw" is the stable re-partition only: the old name of the line edit is
        # refused, and history written under it reads as today's name.
        old = edit(client, draft, 1, {"op": "redraw", "line": coords, "grids": [src, dst]})
        assert old.status_code == 422 and version_of(client, draft) == 1
        assert client.get(f"/plans/{draft}/edits").json()[-1]["op"] == "reshape"
        with store.engine.begin() as conn:
            conn.execute(update(PlanEdit).where(PlanEdit.plan_id == draft)
                         .values(op="redraw"))
        assert [h["op"] for h in client.get(f"/plans/{draft}/edits").json()] == ["reshape"]
        return
    raise AssertionError("no reshape was accepted")


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_concurrent_edits_with_one_version_give_one_success_and_one_409(
        store: DemoStore, draft: int) -> None:
    codes = list(read_grids(store.engine, draft)["code"][:2])
    gate = threading.Barrier(2)
    results: list[httpx.Response] = []
    with live_server(create_app(store.settings, store.engine)) as running:
        def rename(code: str, name: str) -> None:
            with httpx.Client(base_url=running.url, timeout=60) as http:
                gate.wait()
                results.append(http.post(f"/plans/{draft}/edits", json={
                    "op": "rename", "grid": code, "name": name},
                    headers={"If-Match": '"0"', "X-Gridmap-User": quote(name)}))

        threads = [threading.Thread(target=rename, args=(c, f"并发{i}"))
                   for i, c in enumerate(codes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 409], [r.text for r in results]
        lost = next(r for r in results if r.status_code == 409)
        assert lost.json()["current_version"] == 1 and lost.headers["ETag"] == '"1"'
        history = httpx.get(f"{running.url}/plans/{draft}/edits").json()
    assert len(history) == 1 and history[0]["op"] == "rename"
    won = next(r for r in results if r.status_code == 200)
    assert quote(history[0]["author"]) == won.request.headers["X-Gridmap-User"]


def test_copy_and_blocks_routes(client: TestClient, store: DemoStore, draft: int) -> None:
    a, b = state(store.engine, store.plan_id), state(store.engine, draft)
    assert a == b                                      # the copy holds the same grids/blocks
    r = client.get(f"/plans/{draft}/blocks", params={"grid": a[0][0][0]})
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/geo+json")
    feats = r.json()["features"]
    assert feats and {f["properties"]["grid_code"] for f in feats} == {a[0][0][0]}
    frame = gpd.GeoDataFrame.from_features(feats)
    assert int(frame["households"].sum()) == int(a[0][0][4])
    assert client.post("/plans/999999/copy").status_code == 404


def test_an_edit_refreshes_the_cached_map_grids_and_tiles(
        client: TestClient, store: DemoStore, draft: int) -> None:
    """The map's simplified grids and the tiles are cached by the plan's stamp: after an
    edit (and after its undo) they follow the stored grids, never the cached answer."""
    import mapbox_vector_tile

    from maps.tiles import tile_at

    def map_grids(**filters: str) -> dict[str, shapely.Geometry]:
        r = client.get(f"/plans/{draft}/grids", params={"simplify": 2, **filters})
        assert r.status_code == 200
        return {f["id"]: shapely.geometry.shape(f["geometry"]) for f in r.json()["features"]}

    def tile_households(point: shapely.Point) -> dict[str, int]:
        t = tile_at(point.x, point.y, 12)
        r = client.get(f"/tiles/{draft}/{t.z}/{t.x}/{t.y}.mvt")
        assert r.status_code == 200
        return {f["properties"]["code"]: f["properties"]["households"]
                for f in mapbox_vector_tile.decode(r.content)["grids"]["features"]}

    def stored(code: str) -> int:
        return int(read_grids(store.engine, draft).set_index("code").loc[code, "households"])

    before = map_grids()
    assert map_grids() == before                                # served from the cache
    blocks = read_plan_blocks(store.engine, draft).set_index("block_no")
    for block, _src, dst in candidates(store, draft):          # a block with households
        if blocks.loc[block, "households"] == 0:
            continue
        inside = blocks.loc[block, "geometry"].representative_point()
        before_households = stored(dst)
        assert tile_households(inside)[dst] == before_households   # now in the tile cache
        r = edit(client, draft, 0, {"op": "move", "blocks": [block], "to": dst})
        if r.status_code == 200:
            break
    assert r.status_code == 200, r.text
    village = str(blocks.loc[block, "village_code"])
    after = map_grids()
    fresh = map_grids(village=village)                          # not cached: made anew
    assert {c: after[c] for c in fresh} == fresh
    assert not after[dst].equals(before[dst]) and after[dst].area > before[dst].area
    assert after[dst].contains(inside) and not before[dst].contains(inside)
    assert tile_households(inside)[dst] == stored(dst) > before_households
    undone = client.post(f"/plans/{draft}/undo", headers={"If-Match": '"1"', **USER})
    assert undone.status_code == 200, undone.text
    assert map_grids() == before


def test_an_edit_measures_the_barrier_inside_what_it_reshapes_and_keeps_other_reasons(
        client: TestClient, store: DemoStore, draft: int) -> None:
    """A reshaped grid gets its metres of river, ridge or railway measured again, band
    flags, and the crossing flag when one runs through it; a grid whose 四至 alone changed
    keeps its flags, reason and metres; the answer warns only of what the edit reshaped;
    undo restores every field exactly."""
    import geopandas as gpd
    import pandas as pd

    from gis.store import read_layer

    before = read_grids(store.engine, draft).set_index("code")
    crossing = set(before.index[before["flags"].map(lambda f: "crosses_barrier" in f)])
    moves = [m for m in candidates(store, draft) if m[1] in crossing or m[2] in crossing]
    assert moves, "some block of a crossing grid must border another grid"
    state_before = state(store.engine, draft)
    for move in moves:
        r = edit(client, draft, 0, {"op": "move", "blocks": [move[0]], "to": move[2]})
        if r.status_code == 200:
            break
    assert r.status_code == 200, r.text
    _block, src, dst = move
    answer = {f["id"]: f["properties"] for f in r.json()["grids"]["features"]}
    after = read_grids(store.engine, draft).set_index("code")
    # The strong lines as an edit sees them: rivers, ridges and railways given as lines.
    lines = [read_layer(store.engine, store.territory_id, layer)
             for layer in ("water", "ridges", "railways")]
    strong = gpd.GeoDataFrame(pd.concat(lines, ignore_index=True), crs=4326)
    strong = strong[strong.geom_type.isin(["LineString", "MultiLineString"])].to_crs(
        store.metric_epsg)
    for code in (src, dst):
        shape = gpd.GeoSeries([after.loc[code].geometry], crs=4326).to_crs(
            store.metric_epsg).iloc[0]
        want = float(shapely.length(shapely.intersection(
            strong.geometry.to_numpy(), shapely.buffer(shape, -2.0))).sum())
        assert after.loc[code, "barrier_inside_m"] == pytest.approx(want, abs=0.2), code
        assert answer[code]["warning"] == (after.loc[code, "flag_reason"] or "")
        # Band flags, and a crossing where a river, ridge or railway runs through it.
        crosses = after.loc[code, "barrier_inside_m"] > CROSSING_M
        assert ("crosses_barrier" in after.loc[code, "flags"]) == crosses, code
        if crosses:
            assert f"{after.loc[code, 'barrier_inside_m']:.0f} m of it inside the grid" in \
                after.loc[code, "flag_reason"]
    others = set(answer) - {src, dst}
    for code in others:
        assert answer[code]["warning"] == ""
        for field in ("flags", "flag_reason", "barrier_inside_m"):
            assert after.loc[code, field] == before.loc[code, field] or (
                pd.isna(after.loc[code, field]) and pd.isna(before.loc[code, field])), field
    undone = client.post(f"/plans/{draft}/undo", headers={"If-Match": '"1"'})
    assert undone.status_code == 200, undone.text
    assert all(f["properties"]["warning"] == "" for f in undone.json()["grids"]["features"])
    assert state(store.engine, draft) == state_before
