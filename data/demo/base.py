"""The generator's start: its random streams, name banks and the outputs every stage adds to."""

from __future__ import annotations

import numpy as np

from data import names as nm
from data.demo.common import (
    CENTER_LONLAT,
    DISTRICT_CODE,
    DISTRICT_NAME,
    DISTRICT_SHORT,
    PRIMARY,
    SECONDARY,
    TERTIARY,
    GArr,
    Geom,
    IArr,
)


class Start:
    """Builds the territory stage by stage in local metric coordinates (EPSG:4547 - offset):
    each stage is a subclass of the one before, reading what the earlier stages left."""

    def __init__(self, households: int, seed: int, district: tuple[str, str] | None = None
                 ) -> None:
        self.rng = np.random.default_rng(seed)
        self.households = households
        #: The district's code and short name (区 follows it), and where its centre goes
        #: (lon/lat, and an offset in metres from it).
        self.code, self.short = district or (DISTRICT_CODE, DISTRICT_SHORT)
        self.name = DISTRICT_NAME if district is None else f"{self.short}示范区"
        self.center: tuple[float, float] = CENTER_LONLAT
        self.offset = (0.0, 0.0)
        rng = self.rng
        self.bank = nm.NameBank(rng)  # admin areas, hamlets
        self.road_bank = nm.NameBank(rng)  # roads
        self.bank.reserve(self.short)
        self.rural_hh = round(households * rng.uniform(0.12, 0.18))
        self.urban_hh = households - self.rural_hh
        # outputs, in local coordinates
        self.road_geoms: list[Geom] = []
        self.road_cls: list[int] = []
        self.road_names: list[str | None] = []
        self.water: list[tuple[Geom, str]] = []
        self.ridges: list[tuple[Geom, str]] = []
        self.rails: list[tuple[Geom, str]] = []
        self.facilities: list[tuple[Geom, str, str]] = []
        self.dedicated_rows: list[tuple[Geom, str, str]] = []
        self.bld_geoms: list[GArr] = []
        self.bld_cols: dict[str, list[IArr]] = {
            "households": [],
            "population": [],
            "floors": [],
            "use": [],
        }

    # -- naming -----------------------------------------------------------

    def _road_name(self, cls: int) -> str:
        stem = self.road_bank.stem()
        if cls == PRIMARY:
            return stem + ("大道" if self.rng.random() < 0.5 else "路")
        if cls == SECONDARY:
            return stem + "路"
        if cls == TERTIARY:
            return stem + ("街" if self.rng.random() < 0.5 else "路")
        return stem + ("巷" if self.rng.random() < 0.6 else "里")


    def _add_buildings(self, geoms: GArr, hh: IArr, pop: IArr, floors: IArr, use: IArr) -> None:
        self.bld_geoms.append(geoms)
        self.bld_cols["households"].append(hh.astype(np.int64))
        self.bld_cols["population"].append(pop.astype(np.int64))
        self.bld_cols["floors"].append(floors.astype(np.int64))
        self.bld_cols["use"].append(use.astype(np.int64))

    def _add_road(self, geom: Geom, cls: int, name: str | None) -> None:
        self.road_geoms.append(geom)
        self.road_cls.append(cls)
        self.road_names.append(name)
