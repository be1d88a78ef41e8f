"""What the engine says of its grids: their outlines dissolved from blocks, codes, names,
四至 and figures, and the flags the data explains (a barrier inside a grid, a building cut
by an admin line)."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from partitioning import boundaries, codes, flags, quality
from partitioning.blocks import STRONG_KINDS, dissolve
from partitioning.flags import CROSSING_M
from partitioning.params import PartitionParams
from partitioning.villages import Assigner

#: Parts of a grid smaller than this (m²) beside a bigger one are specks, not parts.
SPECK_M2 = 1.0

def dissolve_grids(blocks: gpd.GeoDataFrame, assigner: Assigner, block_hh: np.ndarray,
              block_pop: np.ndarray, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Each grid's blocks dissolved into one outline, with its households, population and
    flags; a grid out of the band for no reason in its data is flagged so."""
    label = assigner.label
    if (label < 0).any():  # cannot happen: every block belongs to a village
        raise RuntimeError(f"{int((label < 0).sum())} blocks left without a grid")
    n_grids = len(assigner.grids)
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(n_grids + 1))
    geoms = blocks.geometry.to_numpy()[order]
    merged = np.empty(n_grids, dtype=object)
    for g in range(n_grids):
        merged[g] = dissolve(geoms[starts[g]:starts[g + 1]])
    merged = _polygonal(shapely.make_valid(merged))
    vname = dict(zip(villages["code"], villages["name"], strict=True))
    frame = pd.DataFrame({
        "village_code": [g.village for g in assigner.grids],
        "kind": [g.kind for g in assigner.grids],
        "households": np.bincount(label, weights=block_hh, minlength=n_grids).astype(int),
        "population": np.bincount(label, weights=block_pop, minlength=n_grids).astype(int),
        "flags": [g.flags for g in assigner.grids],
        "flag_reason": [g.reason for g in assigner.grids],
        "name_hint": [g.name_hint for g in assigner.grids],
    })
    frame["village_name"] = frame["village_code"].map(vname)
    # Out of the band and not explained by the data: say so (never silently out of range).
    lo, hi = assigner.band
    reasons = frame["flag_reason"].to_numpy()
    for i, (fl, kind, h) in enumerate(zip(frame["flags"], frame["kind"],
                                          frame["households"], strict=True)):
        flag = flags.band_flag(kind, h, assigner.band)
        if flag and not flags.is_forced(fl) and not set(fl) & flags.BAND_FLAGS:
            fl.append(flag)
            reasons[i] = reasons[i] or f"{h} households, outside {lo}–{hi}"
    frame["flag_reason"] = reasons
    return gpd.GeoDataFrame(frame, geometry=merged, crs=blocks.crs)


def _strong_lines(barriers: gpd.GeoDataFrame, water: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rivers, ridges and railways grids should not have inside them: given lines (a
    river line only outside the river's area) and the centre lines of rivers drawn as
    areas (not their banks)."""
    cls = barriers["class"].astype(str)
    kind = barriers["kind"].astype(str)
    given = barriers[kind.isin(STRONG_KINDS) & ~cls.isin(["riverbank", "centreline"])]
    geoms = given.geometry.to_numpy()
    if len(water):
        wet = (given["kind"] == "water").to_numpy()
        geoms = geoms.copy()
        geoms[wet] = shapely.difference(geoms[wet], shapely.union_all(water.geometry.to_numpy()))
    centres = barriers[cls == "centreline"]
    return gpd.GeoDataFrame(
        {"kind": np.concatenate([given["kind"].to_numpy(), centres["kind"].to_numpy()]),
         "name": np.concatenate([given["name"].to_numpy(dtype=object),
                                 centres["name"].to_numpy(dtype=object)])},
        geometry=np.concatenate([geoms, centres.geometry.to_numpy()]), crs=barriers.crs)


def _flag_inside(grids: gpd.GeoDataFrame, strong: gpd.GeoDataFrame) -> None:
    """Grids with a river, ridge or railway inside them that no side explained (the barrier
    ends inside a block: it does not cut the village in two there) say so."""
    inside = grids["barrier_inside_m"].to_numpy()
    todo = [i for i, (m, flags, kind) in enumerate(zip(
        inside, grids["flags"], grids["kind"], strict=True))
        if m > CROSSING_M and kind == "comprehensive"
        and not {"crosses_barrier", "rural_village"} & set(flags)]
    if not todo:
        return
    names = strong["name"].to_numpy(dtype=object) if "name" in strong else \
        np.full(len(strong), None, dtype=object)
    lines = strong.geometry.to_numpy()
    reasons = grids["flag_reason"].to_numpy(dtype=object)
    for i in todo:
        geom = grids.geometry.iloc[i]
        hit = shapely.STRtree(lines).query(geom, predicate="intersects")
        named = sorted({str(n) for n in names[hit] if isinstance(n, str) and n})
        what = "、".join(named) if named else "a river, ridge or railway"
        grids["flags"].iloc[i].append("crosses_barrier")
        reasons[i] = (reasons[i] + "; " if reasons[i] else "") + (
            f"crosses {what}: {inside[i]:.0f} m of it inside the grid, where it ends "
            "inside the village (the land on its two sides is one piece)")
    grids["flag_reason"] = reasons


def _flag_overlay(grids: gpd.GeoDataFrame, strong: gpd.GeoDataFrame) -> None:
    """Grids of any kind (a rural village kept whole, a water grid) that a department
    unit's boundary named as a barrier runs through say so, as a river crossing does: a
    plan made with an overlay as barrier reports every grid not whole in one unit."""
    is_overlay = (strong["kind"].astype(str) == "overlay").to_numpy()
    if not is_overlay.any() or not len(grids):
        return
    lines = strong.geometry.to_numpy()[is_overlay]
    names = strong["name"].to_numpy(dtype=object)[is_overlay]
    geoms = grids.geometry.to_numpy()
    inside, _ = quality.barrier_inside(geoms, lines, np.full(len(lines), "overlay"))
    reasons = grids["flag_reason"].to_numpy(dtype=object)
    tree = shapely.STRtree(lines)
    for i in np.flatnonzero(inside > CROSSING_M).tolist():
        hit = tree.query(shapely.buffer(geoms[i], -quality.INSIDE_TOLERANCE_M),
                         predicate="intersects")
        named = sorted({str(n) for n in names[hit] if isinstance(n, str) and n})
        what = "、".join(named) if named else "a department unit's boundary"
        if "crosses_barrier" not in grids["flags"].iloc[i]:
            grids["flags"].iloc[i].append("crosses_barrier")
        reasons[i] = (reasons[i] + "; " if reasons[i] else "") + (
            f"crosses {what}: {inside[i]:.0f} m of it inside the grid")
    grids["flag_reason"] = reasons


def inside_report(grids: gpd.GeoDataFrame, by_kind: dict[str, float]) -> dict[str, Any]:
    """Strong barrier inside grids, per plan and per grid; crossings no flag explains."""
    inside = grids["barrier_inside_m"].to_numpy()
    explained = np.array([bool({"crosses_barrier", "rural_village"} & set(f))
                          for f in grids["flags"]]) | (grids["kind"] != "comprehensive")
    crossing = inside > CROSSING_M
    return {
        "barrier_inside_m": round(float(inside.sum()), 1),
        "barrier_inside_by_kind": by_kind,
        "crossings_flagged": int((crossing & explained).sum()),
        "crossings_unflagged": int((crossing & ~explained).sum()),
        "barrier_inside": [
            {"code": str(c), "m": round(float(m), 1), "flags": list(f)}
            for c, m, f in zip(grids["code"], inside, grids["flags"], strict=True) if m > 0.5],
    }


def split_buildings(buildings: gpd.GeoDataFrame, grids: gpd.GeoDataFrame,
                     barriers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame
                     ) -> dict[str, Any]:
    """Footprints lying in two grids (more than 1 m² and 1% of it in each): those that
    straddle a village or community boundary (the admin line forces the split; listed),
    those that straddle a given road, river or other line (the building keeps to one
    grid's households; the line cuts its outline), and any other (none expected: a
    self-check)."""
    geoms = buildings.geometry.to_numpy()
    poly = np.flatnonzero(shapely.get_type_id(geoms) >= 3)
    out: dict[str, Any] = {"buildings_split_by_admin_lines": 0,
                           "buildings_split_by_given_lines": 0, "buildings_split_other": 0,
                           "buildings_split_by_admin": []}
    if not len(poly) or not len(grids):
        return out
    bi, gi = shapely.STRtree(grids.geometry.to_numpy()).query(geoms[poly],
                                                              predicate="intersects")
    many = np.bincount(bi, minlength=len(poly)) > 1
    keep = many[bi]
    bi, gi = bi[keep], gi[keep]
    if not len(bi):
        return out
    area = shapely.area(shapely.intersection(geoms[poly][bi], grids.geometry.to_numpy()[gi]))
    whole = shapely.area(geoms[poly][bi])
    real = area > np.maximum(1.0, 0.01 * whole)
    counts = np.bincount(bi[real], minlength=len(poly))
    split = np.flatnonzero(counts > 1)
    if not len(split):
        return out
    sg = geoms[poly][split]

    def crossing(lines: np.ndarray) -> np.ndarray:
        # Each footprint against the lines near it (a tree), not against one union of
        # them all: the union is a district's worth of vertices for every test.
        hit = np.zeros(len(sg), dtype=bool)
        if len(lines):
            hit[shapely.STRtree(lines).query(sg, predicate="intersects")[0]] = True
        return hit

    shown = ((barriers["kind"] != "inferred") | barriers["name"].notna()).to_numpy()
    by_admin = crossing(shapely.boundary(villages.geometry.to_numpy()))
    by_given = ~by_admin & crossing(barriers.geometry.to_numpy()[shown])
    codes = grids["code"].to_numpy()
    out.update({
        "buildings_split_by_admin_lines": int(by_admin.sum()),
        "buildings_split_by_given_lines": int(by_given.sum()),
        "buildings_split_other": int((~by_admin & ~by_given).sum()),
        "buildings_split_by_admin": [
            {"building": int(poly[b]), "grids": sorted(str(c) for c in
                                                       codes[gi[(bi == b) & real]])}
            for b in split[by_admin][:100]],
    })
    return out


def flag_split(grids: gpd.GeoDataFrame, split: list[dict[str, Any]]) -> None:
    """Grids sharing a building that a village or community boundary cuts say so."""
    if not split:
        return
    count: dict[str, int] = {}
    for item in split:
        for code in item["grids"]:
            count[code] = count.get(code, 0) + 1
    reasons = grids["flag_reason"].to_numpy(dtype=object)
    for i, code in enumerate(grids["code"].to_numpy()):
        n = count.get(str(code))
        if not n:
            continue
        grids["flags"].iloc[i].append("building_split_by_boundary")
        reasons[i] = (reasons[i] + "; " if reasons[i] else "") + (
            f"{n} building{'s' if n > 1 else ''} cut by the village/community boundary (a "
            "building belongs to one grid; the admin line forces the split)")
    grids["flag_reason"] = reasons


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Each geometry's polygons only (a union or a repair can leave a stray line or point
    where two blocks meet at a corner), without specks under SPECK_M2 beside a real part
    (a needle left between two cuts): a grid is a Polygon or a MultiPolygon of parts that
    matter."""
    out = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(out)
    for g in np.flatnonzero((types == 7) | (types == 6)):
        parts = shapely.get_parts(out[g])
        parts = parts[shapely.get_type_id(parts) == 3]
        area = shapely.area(parts)
        if (area >= SPECK_M2).any():
            parts = parts[area >= SPECK_M2]
        out[g] = parts[0] if len(parts) == 1 else shapely.multipolygons(parts)
    return out


def describe(grids: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
              params: PartitionParams, water: gpd.GeoDataFrame | None = None
              ) -> gpd.GeoDataFrame:
    """Codes, names, 四至 and the per-grid quality figures."""
    geoms = grids.geometry.to_numpy()
    parts = shapely.get_num_geometries(geoms)
    reasons = grids["flag_reason"].to_numpy(dtype=object).copy()
    for i, (fl, p) in enumerate(zip(grids["flags"], parts, strict=True)):
        if p > 1 and "noncontiguous" not in fl:
            fl.append("noncontiguous")
            reasons[i] = (reasons[i] + "; " if reasons[i] else "") + \
                f"in {p} parts (its blocks are not all connected: the village is in " \
                "pieces, or split by a dedicated area)"
    centre = shapely.point_on_surface(geoms)
    area = shapely.area(geoms)
    grid_codes = codes.assign_codes(
        grids["village_code"].to_numpy(), grids["kind"].to_numpy(),
        shapely.get_x(centre), shapely.get_y(centre), np.sqrt(area),
        params.dedicated_serial_start)
    serial = np.array([int(c[-3:]) for c in grid_codes])
    names = [
        f"{hint}专属网格" if kind == "dedicated" and hint else
        f"{vn}第{s - params.dedicated_serial_start + 1}专属网格" if kind == "dedicated" else
        f"{vn}第{s}网格"
        for vn, kind, hint, s in zip(grids["village_name"], grids["kind"], grids["name_hint"],
                                     serial, strict=True)
    ]
    segments, texts = boundaries.sides(geoms, grid_codes, barriers)
    # A cut between buildings counts as a barrier only where it runs down a street.
    shown = (barriers["kind"] != "inferred") | barriers["name"].notna()
    kinds = boundaries.followed_kinds(segments, barriers.loc[shown],
                                      shapely.boundary(villages.geometry.to_numpy()),
                                      villages.crs)
    share, by_kind = quality.barrier_shares(segments, kinds.astype(str), len(grids))
    total_len = float(segments["length"].sum()) or 1.0
    on_len = float(segments["length"].to_numpy()[kinds != ""].sum())
    shape = quality.shape_figures(geoms)
    out = gpd.GeoDataFrame({
        "code": grid_codes,
        "name": names,
        "village_code": grids["village_code"].to_numpy(),
        "village_name": grids["village_name"].to_numpy(),
        "kind": grids["kind"].to_numpy(),
        "households": grids["households"].to_numpy(),
        "households_estimated": grids["households_estimated"].to_numpy(),
        "population": grids["population"].to_numpy(),
        "area_m2": shape["area_m2"],
        "compactness": shape["compactness"],
        "barrier_share": np.round(share, 4),
        "radius_m": shape["radius_m"],
        "boundary_text": texts,
        "flags": grids["flags"].to_numpy(),
        "flag_reason": reasons,
    }, geometry=geoms, crs=grids.crs)
    out.attrs["barrier_boundary_share"] = round(on_len / total_len, 4)
    out.attrs["barrier_share_by_kind"] = by_kind
    strong = _strong_lines(barriers, water if water is not None else barriers.iloc[:0])
    inside, inside_by_kind = quality.barrier_inside(geoms, strong.geometry.to_numpy(),
                                                    strong["kind"].to_numpy())
    out["barrier_inside_m"] = np.round(inside, 1)
    out.attrs["barrier_inside_by_kind"] = inside_by_kind
    _flag_inside(out, strong)
    _flag_overlay(out, strong)
    return out
