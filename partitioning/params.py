"""The engine's parameters: household band, barrier strengths, estimation and code settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from gis.band import MAX_HOUSEHOLDS, MIN_HOUSEHOLDS, TARGET_HOUSEHOLDS

#: Barrier strength by class, 0 (no barrier) .. 1 (never crossed). Admin
#: boundaries are not in this table: they are never crossed at all.
DEFAULT_STRENGTHS: dict[str, float] = {
    "motorway": 1.0, "trunk": 1.0, "primary": 0.9, "secondary": 0.8,
    "railway": 1.0, "river": 0.95, "water": 0.95, "riverbank": 0.95, "ridge": 0.9,
    "tertiary": 0.6, "unclassified": 0.5, "residential": 0.45, "living_street": 0.35,
    "service": 0.25, "track": 0.25, "pedestrian": 0.2, "footway": 0.15, "path": 0.15,
    "cycleway": 0.15, "steps": 0.1,
}
#: How footprints without a household count are estimated (PartitionParams.estimate).
ESTIMATE_MODES = ("residential", "all", "off")
#: Land use classes whose untagged buildings are homes (商住 mixed use counts).
RESIDENTIAL_LAND = frozenset({"residential", "mixed"})
#: Strength of a road class not in the table.
UNKNOWN_ROAD_STRENGTH = 0.4


@dataclass(frozen=True)
class PartitionParams:
    """Everything the engine can be told; defaults are the urban standard."""

    min_households: int = MIN_HOUSEHOLDS
    max_households: int = MAX_HOUSEHOLDS
    target_households: int = TARGET_HOUSEHOLDS
    seed: int = 0
    #: A rural village wider than this (m) is split into pieces about this wide.
    service_radius_m: float = 5_000.0
    #: Faces smaller than this (m²) are merged into a neighbour.
    sliver_area_m2: float = 150.0
    #: A barrier line ending this close (m) to another line or a village boundary is
    #: joined to it (a river, ridge or railway: ``gap_strong_m``), so that it divides.
    gap_m: float = 5.0
    gap_strong_m: float = 25.0
    #: Straight cuts between buildings (partitioning/oversize.py): a gap this wide (m)
    #: scores as a street; gaps at least ``street_min_width_m`` wide are kept as inferred
    #: streets (a barrier of ``inferred_street_strength``, the 四至's 无名巷道).
    street_width_m: float = 30.0
    street_min_width_m: float = 10.0
    inferred_street_strength: float = 0.5
    #: Water (partitioning/water.py): a stretch of water of at least this area (m²) in
    #: a village is a water grid of its own (水域专属网格); smaller water is shared
    #: between the grids of its banks, unless it would make a grid more than
    #: ``water_share_max`` water (that water joins the village's water grid).
    water_grid_m2: float = 200_000.0
    water_share_max: float = 0.5
    #: Which footprints without a household count are estimated (ESTIMATE_MODES):
    #: ``residential`` those residential by their tag, their land use or the rule for
    #: untagged buildings (docs/partitioning.md); ``all`` every footprint not tagged
    #: otherwise (the old behaviour, bounded); ``off`` none (they hold 0 households).
    estimate: str = "residential"
    #: Household estimate for a footprint: floor area (area × floors) ÷ dwelling size,
    #: never more than floor area ÷ the smallest dwelling.
    dwelling_m2: float = 90.0
    min_dwelling_m2: float = 50.0
    floor_height_m: float = 3.0
    #: A building this tall (m), or with this many floors, in non-residential land use
    #: holds no estimated households (an office or hotel tower).
    tall_building_m: float = 100.0
    tall_building_floors: int = 30
    #: Without land use around it, an untagged footprint counts as residential only when
    #: lower than this (m; 高层 starts at 24 m) and smaller than this (m²): untagged towers
    #: and large halls are offices, malls, factories and stations more often than homes.
    untagged_max_height_m: float = 24.0
    untagged_max_footprint_m2: float = 3_000.0
    #: Persons per household when population is not given.
    persons_per_household: float = 2.6
    strengths: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STRENGTHS))
    #: Serial of the first dedicated grid in a village (comprehensive grids start at 1).
    dedicated_serial_start: int = 901
    #: Spanning trees tried per cut before relaxing the band.
    tree_attempts: int = 24
    #: Backtracking: distinct cuts tried per level, and cuts tried per grid in all.
    backtrack_branch: int = 3
    backtrack_budget: int = 40
    #: Cuts tried per grid while a village is still at a coarse level (its blocks can
    #: be cut finer between buildings if the search fails): fail fast there.
    probe_budget: int = 4
    #: Worker processes for the villages (0: the CPUs available, at most 2). The
    #: result does not depend on it; it only helps where cores are free (on a shared
    #: 2-core machine it measured no faster), so one process is the default.
    workers: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_households <= self.target_households <= self.max_households:
            raise ValueError(
                "the household band must satisfy 0 < min <= target <= max, got "
                f"min={self.min_households}, target={self.target_households}, "
                f"max={self.max_households}")
        if self.estimate not in ESTIMATE_MODES:
            raise ValueError(f"estimate must be one of {', '.join(ESTIMATE_MODES)}, got "
                             f"{self.estimate!r}")
        if not (self.min_dwelling_m2 > 0 and self.dwelling_m2 > 0):
            raise ValueError("dwelling sizes must be positive")

    @property
    def band(self) -> tuple[int, int]:
        return self.min_households, self.max_households

    def strength(self, barrier_class: str) -> float:
        return self.strengths.get(barrier_class, UNKNOWN_ROAD_STRENGTH)
