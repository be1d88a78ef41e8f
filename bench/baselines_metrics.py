"""The figures every method of the baselines benchmark is measured by: households per region
against the band, Polsby–Popper of the dissolved blocks, non-contiguous regions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

if TYPE_CHECKING:
    from bench.baselines_graph import BlockGraph

LO, HI, TARGET = 300, 500, 400



def region_metrics(geoms: np.ndarray, households: np.ndarray) -> dict[str, Any]:
    """Size and shape figures of a plan's regions (geometries and households)."""
    from partitioning.quality import polsby_popper

    pp = polsby_popper(geoms)
    in_band = (households >= LO) & (households <= HI)
    return {
        "regions": len(households),
        "in_range_share": round(float(in_band.mean()), 4),
        "below_min": int((households < LO).sum()),
        "above_max": int((households > HI).sum()),
        "households_min": int(households.min()),
        "households_max": int(households.max()),
        "households_mean": round(float(households.mean()), 1),
        "polsby_popper_mean": round(float(pp.mean()), 4),
        "polsby_popper_median": round(float(np.median(pp)), 4),
        "noncontiguous": int((shapely.get_num_geometries(geoms) > 1).sum()),
    }


def labels_metrics(graph: BlockGraph, labels: np.ndarray) -> dict[str, Any]:
    """Dissolve the blocks of each region; metrics with the blocks' real households."""
    _, label = np.unique(labels, return_inverse=True)
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(label.max() + 2))
    geoms = graph.geoms[order]
    merged = np.array([shapely.union_all(geoms[starts[r]:starts[r + 1]])
                       for r in range(len(starts) - 1)], dtype=object)
    households = np.bincount(label, weights=graph.households).astype(np.int64)
    return region_metrics(merged, households)


def engine_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """All grids as regions, plus the engine's own view (forced grids counted apart)."""
    from partitioning.flags import FORCED as FORCED_FLAGS

    out = region_metrics(shapely.from_wkb(result["geoms"]), result["households"])
    report = result["report"]
    out.update({
        "in_range_share_excl_forced": report["in_range_share"],
        "in_range_share_comprehensive": report["in_range_share_all"],
        "forced": report["n_forced"], "dedicated": report["n_dedicated"],
        "engine_blocks": report["n_blocks"], "relaxed_cuts": report["relaxed_cuts"],
        "blocks_cut_between_buildings": report["blocks_cut_between_buildings"],
        "coverage_share": report["coverage_share"], "stage_s": result["stage_s"],
    })
    out_of_band = [
        {"code": c, "households": int(h), "kind": k, "flags": f}
        for c, h, k, f in zip(result["code"], result["households"], result["kind"],
                              result["flags"], strict=True)
        if k == "comprehensive" and not LO <= h <= HI]
    out["out_of_band"] = out_of_band
    out["out_of_band_not_forced"] = [
        g for g in out_of_band if not set(g["flags"]) & set(FORCED_FLAGS)]
    return out


# ---------------------------------------------------------------------------
