"""A street-first fabric put together: :func:`generate` runs the stages and assembles the
territory's layers, the withheld streets and the footprints (WGS84)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import Transformer

from data.fabric.buildings import Buildings
from data.fabric.common import CENTER_LONLAT, DENSITIES, DISTRICT_CODE, METRIC_CRS, WGS84, Geom


@dataclass
class Fabric:
    """A generated fabric: the territory's layers, its withheld streets and its footprints
    (all in WGS84), and what was asked and built."""

    layers: dict[str, gpd.GeoDataFrame]
    withheld: gpd.GeoDataFrame
    footprints: gpd.GeoDataFrame
    seed: int
    households: int
    density: str
    withhold: float
    points: bool
    river: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        kind = "points" if self.points else "footprints"
        river = "-river" if self.river else ""
        return f"{self.density}-{self.households // 1000}k-s{self.seed}-{kind}{river}"

    def write(self, path: Path | str) -> Path:
        """Write the territory's layers into one GeoPackage (replacing ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        for name, gdf in self.layers.items():
            pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG")
        return path


def generate(seed: int = 1, *, households: int = 20_000, density: str = "mid",
             withhold: float = 2 / 3, points: bool = False, river: bool = False) -> Fabric:
    """A fabric of exactly ``households`` households; see the module docstring."""
    if density not in DENSITIES:
        raise ValueError(f"density must be one of {', '.join(DENSITIES)}, got {density!r}")
    if not 0.0 <= withhold <= 1.0:
        raise ValueError(f"withhold is a share in [0, 1], got {withhold}")
    if households < 1_000:
        raise ValueError("households must be at least 1,000")
    # A layout that cannot hold the households (a tiny fabric of a few towers) is laid
    # out again on a larger lattice, from a seed derived from the first.
    for attempt in range(4):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])
        gen = _Gen(rng, DENSITIES[density], households, withhold, river,
                   scale=1.25 ** attempt)
        gen.lattice()
        gen.minor_streets()
        gen.buildings()
        try:
            gen.fit_households()
            break
        except ValueError:
            if attempt == 3:
                raise
    layers, withheld, footprints = gen.assemble(points)
    info = gen.info()
    return Fabric(layers=layers, withheld=withheld, footprints=footprints, seed=seed,
                  households=households, density=density, withhold=withhold, points=points,
                  river=river, info=info)


class _Gen(Buildings):
    """The generator's last stage: the layers."""

    # -- layers -------------------------------------------------------------------

    def assemble(self, points: bool) -> tuple[dict[str, gpd.GeoDataFrame], gpd.GeoDataFrame,
                                             gpd.GeoDataFrame]:
        rng = self.rng
        tr = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
        ox, oy = tr.transform(*CENTER_LONLAT)
        cx, cy = shapely.centroid(self.district).coords[0]
        shift = np.array([ox - cx, oy - cy])

        def frame(geoms: list[Geom], cols: dict[str, Any]) -> gpd.GeoDataFrame:
            arr = np.array(geoms, dtype=object)
            if len(arr):
                arr = shapely.transform(arr, lambda xy: xy + shift)
            return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(arr, crs=METRIC_CRS)
                                    ).to_crs(WGS84)

        # Withhold an exact share of the minor streets (by count).
        minor = [i for i, s in enumerate(self.streets) if s.minor]
        n_out = round(self.withhold_share * len(minor))
        out_idx = set(np.asarray(minor)[rng.permutation(len(minor))[:n_out]].tolist())
        self.given_minor = [self.streets[i] for i in minor if i not in out_idx]
        self.withheld_minor = [self.streets[i] for i in sorted(out_idx)]
        roads = [s for i, s in enumerate(self.streets) if i not in out_idx]
        n_towns = max(self.community_town) + 1
        town_codes = [f"{DISTRICT_CODE}{t + 1:03d}" for t in range(n_towns)]
        town_names = [self.bank.stem() + "街道" for _ in range(n_towns)]
        rows: list[tuple[Geom, str, str, str, str | None, str | None]] = [
            (self.district, DISTRICT_CODE, self.bank.stem() + "区", "district", None, None)]
        for t in range(n_towns):
            members = [g for g, tt in zip(self.communities, self.community_town, strict=True)
                       if tt == t]
            rows.append((shapely.union_all(members, grid_size=0.01), town_codes[t],
                         town_names[t], "town", DISTRICT_CODE, None))
        serial = [0] * n_towns
        self.community_codes = []
        for g, t in zip(self.communities, self.community_town, strict=True):
            serial[t] += 1
            code = f"{town_codes[t]}{serial[t]:03d}"
            self.community_codes.append(code)
            rows.append((g, code, self.bank.stem() + "社区", "village", town_codes[t],
                         "urban"))
        layers: dict[str, gpd.GeoDataFrame] = {}
        layers["admin_areas"] = frame([r[0] for r in rows], {
            "code": [r[1] for r in rows], "name": [r[2] for r in rows],
            "level": [r[3] for r in rows], "parent_code": [r[4] for r in rows],
            "kind": [r[5] for r in rows]})
        layers["roads"] = frame([s.geom for s in roads], {
            "class": [s.cls for s in roads], "name": [s.name for s in roads]})
        if self.river_geom is not None and not self.river_geom.is_empty:
            parts = [p for p in shapely.get_parts(self.river_geom) if p.area > 100.0]
            layers["water"] = frame(parts, {"name": [self.river_name] * len(parts)})
        blds = self.buildings_
        hh = np.array([b.households for b in blds], dtype=np.int64)
        pop = np.round(hh * rng.uniform(2.5, 3.2, len(blds))).astype(np.int64)
        cols = {"households": hh, "population": pop,
                "floors": np.array([b.floors for b in blds], dtype=np.int64),
                "use": np.array([b.use for b in blds], dtype=object)}
        footprints = frame([b.geom for b in blds], {
            **cols, "kind": np.array([b.kind for b in blds], dtype=object),
            "community": np.array([self.community_codes[b.community] for b in blds],
                                  dtype=object)})
        if points:
            layers["buildings"] = frame([shapely.point_on_surface(b.geom) for b in blds],
                                        dict(cols))
        else:
            layers["buildings"] = frame([b.geom for b in blds], dict(cols))
        layers["facilities"] = frame([g for g, _ in self.schools], {
            "kind": ["school"] * len(self.schools), "name": [n for _, n in self.schools]})
        w = self.withheld_minor
        withheld = frame([s.geom for s in w], {
            "class": [s.cls for s in w], "name": [s.name for s in w],
            "width": np.round([s.width for s in w], 2),
            "community": [self.community_codes[s.community] for s in w]})
        return layers, withheld, footprints

    def info(self) -> dict[str, Any]:
        minor_len = sum(s.geom.length for s in self.streets if s.minor)
        out_len = sum(s.geom.length for s in self.withheld_minor)
        kinds: dict[str, int] = {}
        for b in self.buildings_:
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
        comm_hh = np.bincount([b.community for b in self.buildings_],
                              weights=[b.households for b in self.buildings_],
                              minlength=len(self.communities))
        return {
            "communities": len(self.communities),
            "towns": max(self.community_town) + 1,
            "community_households": [int(h) for h in comm_hh],
            "area_km2": round(self.district.area / 1e6, 3),
            "street_blocks": self.n_blocks,
            "buildings": len(self.buildings_),
            "buildings_by_kind": dict(sorted(kinds.items())),
            "minor_streets": len(self.given_minor) + len(self.withheld_minor),
            "minor_streets_withheld": len(self.withheld_minor),
            "minor_street_km": round(minor_len / 1e3, 2),
            "minor_street_km_withheld": round(out_len / 1e3, 2),
            "arterial_km": round(sum(s.geom.length for s in self.streets
                                     if not s.minor) / 1e3, 2),
        }
