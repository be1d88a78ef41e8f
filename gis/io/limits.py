"""What one upload may hold (ReadLimits) and what has been read of it so far (Budget)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gis.errors import LimitExceeded
from gis.settings import Settings, get_settings


@dataclass(frozen=True)
class ReadLimits:
    """What one upload or file may hold; the ``GRIDMAP_*`` settings of the same names."""

    max_features: int
    max_vertices: int
    max_feature_vertices: int
    max_unzipped_mb: int
    max_zip_ratio: int
    max_zip_members: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ReadLimits:
        s = settings or get_settings()
        return cls(s.max_features, s.max_vertices, s.max_feature_vertices, s.max_unzipped_mb,
                   s.max_zip_ratio, s.max_zip_members)


class Budget:
    """Features and vertices read so far from one upload, checked against :class:`ReadLimits`."""

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        self.features = 0
        self.vertices = 0

    def rows_left(self) -> int:
        """How many more features may be read (read one more to tell "over" from "at")."""
        return max(self.limits.max_features - self.features, 0)

    def add_rows(self, n: int, *, file: str | None = None, layer: str | None = None,
                 what: str = "features") -> None:
        self.features += n
        if self.features > self.limits.max_features:
            raise LimitExceeded(f"the upload holds more than {self.limits.max_features:,} "
                                f"{what}; split it or clip the territory",
                                setting="max_features", limit=self.limits.max_features,
                                file=file, layer=layer)

    def add(self, geoms: np.ndarray, *, file: str | None = None,
            layer: str | None = None) -> None:
        """Count a layer's features and vertices; refuse a feature or an upload over a limit."""
        self.add_rows(len(geoms), file=file, layer=layer)
        counts = shapely.get_num_coordinates(np.asarray(geoms, dtype=object))
        per = self.limits.max_feature_vertices
        over = np.flatnonzero(counts > per)
        if over.size:
            row = int(over[0])
            raise LimitExceeded(
                f"a feature has {int(counts[row]):,} vertices, more than the "
                f"{per:,} one feature may have; simplify it (e.g. QGIS: Vector > Geometry "
                "Tools > Simplify) or split it", setting="max_feature_vertices", limit=per,
                file=file, layer=layer, row=row)
        self.vertices += int(counts.sum())
        if self.vertices > self.limits.max_vertices:
            raise LimitExceeded(f"the upload holds more than {self.limits.max_vertices:,} "
                                "vertices; simplify the geometries or clip the territory",
                                setting="max_vertices", limit=self.limits.max_vertices,
                                file=file, layer=layer)
