"""The demo district as a whole: generate(), generate_province() and the assembled layers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from data.demo.addresses import Addresses
from data.demo.common import LAYERS, METRIC_CRS, ROAD_CLASSES, USES, WGS84, Geom
from data.demo.geometry import _longest_poly


@dataclass
class DemoTerritory:
    """A generated territory: one GeoDataFrame per layer, all in EPSG:4326."""

    layers: dict[str, gpd.GeoDataFrame]
    seed: int
    households: int

    def write(self, path: Path | str) -> Path:
        """Write every layer into one GeoPackage (replacing ``path``); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        for name in LAYERS:
            gdf = self.layers[name]
            pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG")
        return path


#: The districts of a multi-district demo territory: codes 4401xx and short names (a
#: district past the list is called 示范N).
PROVINCE_DISTRICTS = ("白云", "天河", "海珠", "荔湾", "越秀", "番禺", "花都", "南沙", "从化",
                      "增城", "黄埔", "萝岗")
#: Where a multi-district territory is centred (the central meridian of its Gauss–Krüger
#: zone, so that each district alone falls in the same zone as the whole), and the gap
#: between two of its districts (m).
PROVINCE_CENTER = (114.0, 23.25)
PROVINCE_GAP_M = 3_000.0


def generate_province(districts: int, households: int = 60_000, seed: int = 7, *,
                      progress: bool = False) -> DemoTerritory:
    """A territory of ``districts`` demo districts of about ``households`` households each
    (district k: seed ``seed + k``, code ``4401{11 + k}``), side by side on a lattice with
    :data:`PROVINCE_GAP_M` between them; deterministic by seed. Each district is what
    :func:`generate` makes, under its own code and names."""
    if not 1 <= districts <= 99 - 11:
        raise ValueError("districts must be between 1 and 88")
    gens = []
    for k in range(districts):
        short = PROVINCE_DISTRICTS[k] if k < len(PROVINCE_DISTRICTS) else f"示范{k + 1}"
        gens.append(_build(households, seed + k, (f"4401{11 + k:02d}", short), progress))
    cols = math.ceil(math.sqrt(districts))
    rows = math.ceil(districts / cols)
    width = max(g.district.bounds[2] - g.district.bounds[0] for g in gens) + PROVINCE_GAP_M
    height = max(g.district.bounds[3] - g.district.bounds[1] for g in gens) + PROVINCE_GAP_M
    layers: dict[str, list[gpd.GeoDataFrame]] = {}
    for k, gen in enumerate(gens):
        gen.center = PROVINCE_CENTER
        gen.offset = ((k % cols - (cols - 1) / 2) * width, ((rows - 1) / 2 - k // cols) * height)
        for name, gdf in gen.assemble().items():
            layers.setdefault(name, []).append(gdf)
    merged = {name: gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                                     crs=frames[0].crs) for name, frames in layers.items()}
    total = int(merged["buildings"]["households"].sum())
    return DemoTerritory(layers=merged, seed=int(seed), households=total)


def generate(households: int = 60_000, seed: int = 7, *, progress: bool = False) -> DemoTerritory:
    """Generate a demo district of about ``households`` households (±5%), deterministic by seed."""
    gen = _build(households, seed, None, progress)
    layers = gen.assemble()
    total = int(layers["buildings"]["households"].sum())
    return DemoTerritory(layers=layers, seed=int(seed), households=total)


def _build(households: int, seed: int, district: tuple[str, str] | None,
           progress: bool) -> _Gen:
    """A district generated stage by stage (its layers made by ``assemble()``)."""
    if households < 5_000:
        raise ValueError("households must be at least 5,000")
    gen = _Gen(int(households), int(seed), district)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("urban street lattice", gen.urban_lattice),
        ("urban streets", gen.urban_streets),
        ("district outline, rivers, ridges, railway", gen.natural_features),
        ("urban buildings and communities", gen.urban_buildings),
        ("rural towns and villages", gen.rural_admin),
        ("rural roads and facilities", gen.rural_roads),
        ("rural houses", gen.rural_houses),
        ("dedicated areas", gen.dedicated),
    ]
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task("demo territory", total=len(stages))
        for label, stage in stages:
            bar.update(task, description=f"{gen.short} {label}")
            stage()
            bar.advance(task)
    return gen


class _Gen(Addresses):
    """Every stage of a demo district, and its layers assembled in EPSG:4326."""

    def assemble(self) -> dict[str, gpd.GeoDataFrame]:
        tr = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
        ox, oy = tr.transform(*self.center)
        # Centre the district on the target point (and its offset from it).
        c = self.district.centroid
        dx, dy = ox - c.x + self.offset[0], oy - c.y + self.offset[1]

        def frame(geoms: Iterable[Geom], cols: dict[str, Any]) -> gpd.GeoDataFrame:
            arr = np.array(list(geoms), dtype=object)
            if len(arr):
                arr = shapely.transform(arr, lambda xy: xy + np.array([dx, dy]))
            gdf = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(arr, crs=METRIC_CRS))
            return gdf.to_crs(WGS84)

        layers: dict[str, gpd.GeoDataFrame] = {}
        # Admin areas: communities and villages form one clean polygon coverage (shared
        # edges identical); towns and the district are unions of it.
        n_st = len(self.street_polys)
        low_geoms = [cg for cg, _, _, _ in self.urban_comm_polys] + list(self.vil_geoms)
        low_town = np.array(
            [st for _, st, _, _ in self.urban_comm_polys] + [n_st + int(t) for t in self.vil_town],
            dtype=np.int64,
        )
        low_names = [nm_ for _, _, nm_, _ in self.urban_comm_polys] + list(self.vil_names)
        clean = shapely.coverage_clean(  # type: ignore[attr-defined]
            np.array(low_geoms, dtype=object), gap_width=0.05, snapping_distance=0.02
        )
        town_names = list(self.street_names) + list(self.town_names)
        rows: list[tuple[Geom, str, str, str, str | None, str | None]] = [
            (
                shapely.coverage_union_all(clean),
                self.code,
                self.name,
                "district",
                None,
                None,
            )
        ]
        for ti, tname in enumerate(town_names):
            urban = ti < n_st
            tcode = (
                f"{self.code}{ti + 1:03d}" if urban else f"{self.code}{100 + ti - n_st:03d}"
            )
            idx = np.flatnonzero(low_town == ti).tolist()
            rows.append(
                (shapely.coverage_union_all(clean[idx]), tcode, tname, "town", self.code, None)
            )
            if not urban:
                cen = shapely.centroid(clean[idx])
                idx = [
                    idx[k]
                    for k in np.lexsort((shapely.get_x(cen), -np.round(shapely.get_y(cen) / 800.0)))
                ]
            for k, i in enumerate(idx):
                code = f"{tcode}{k + 1:03d}" if urban else f"{tcode}{200 + k:03d}"
                rows.append(
                    (clean[i], code, low_names[i], "village", tcode, "urban" if urban else "rural")
                )
        layers["admin_areas"] = frame(
            (r[0] for r in rows),
            {
                "code": [r[1] for r in rows],
                "name": [r[2] for r in rows],
                "level": [r[3] for r in rows],
                "parent_code": [r[4] for r in rows],
                "kind": [r[5] for r in rows],
            },
        )
        layers["roads"] = frame(
            self.road_geoms,
            {"class": [ROAD_CLASSES[c] for c in self.road_cls], "name": self.road_names},
        )
        layers["water"] = frame((g for g, _ in self.water), {"name": [n for _, n in self.water]})
        layers["ridges"] = frame((g for g, _ in self.ridges), {"name": [n for _, n in self.ridges]})
        layers["railways"] = frame((g for g, _ in self.rails), {"name": [n for _, n in self.rails]})
        cols = {k: np.concatenate(v) for k, v in self.bld_cols.items()}
        bld = np.concatenate(self.bld_geoms)
        village_of = np.full(len(bld), -1, dtype=np.int64)
        hits = shapely.STRtree(clean).query(shapely.centroid(bld), predicate="intersects")
        village_of[hits[0]] = hits[1]
        layers["buildings"] = frame(
            bld,
            {
                "households": cols["households"],
                "population": cols["population"],
                "floors": cols["floors"],
                "use": np.array(USES, dtype=object)[cols["use"]],
                **self._addresses(bld, village_of, low_names, cols["households"]),
            },
        )
        layers["facilities"] = frame(
            (g for g, _, _ in self.facilities),
            {
                "kind": [k for _, k, _ in self.facilities],
                "name": [n for _, _, n in self.facilities],
            },
        )
        # Each dedicated area lies in exactly one (cleaned) town.
        town_geoms = np.array([r[0] for r in rows if r[3] == "town"], dtype=object)
        dedicated: list[Geom] = []
        for g, _, _ in self.dedicated_rows:
            ti = int(np.argmax(shapely.area(shapely.intersection(town_geoms, g))))
            dedicated.append(_longest_poly(shapely.intersection(g, town_geoms[ti])))
        layers["dedicated_areas"] = frame(
            dedicated,
            {
                "name": [n for _, n, _ in self.dedicated_rows],
                "kind": [k for _, _, k in self.dedicated_rows],
            },
        )
        return layers
