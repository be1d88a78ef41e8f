"""Stage 6: grid codes — the village/community's 12-digit code + a 3-digit serial."""

from __future__ import annotations

import numpy as np
import pandas as pd


def reading_order(cx: np.ndarray, cy: np.ndarray, band: float) -> np.ndarray:
    """Reading order: rows of height ``band`` from north to south, west to east in a row."""
    row = np.floor((cy.max() - cy) / max(band, 1e-9)) if len(cy) else cy
    return np.lexsort((cx, row))


def assign_codes(village: np.ndarray, kind: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                 size: np.ndarray, dedicated_start: int = 901) -> np.ndarray:
    """A 15-digit code per grid: village code + serial numbered west→east, north→south.

    Comprehensive grids are numbered from 001, dedicated grids from
    ``dedicated_start`` (e.g. 901), each series in reading order. ``size``
    (typical grid width, m) sets the row height.
    """
    codes = np.empty(len(village), dtype=object)
    frame = pd.DataFrame({"v": village, "k": kind})
    for (v, k), idx in frame.groupby(["v", "k"], sort=False).indices.items():
        band = float(np.median(size[idx])) if len(idx) else 1.0
        order = idx[reading_order(cx[idx], cy[idx], band)]
        start = dedicated_start if k == "dedicated" else 1
        if start + len(order) - 1 > 999:
            raise ValueError(f"village {v} would need more than 999 {k} grids")
        codes[order] = [f"{v}{start + i:03d}" for i in range(len(order))]
    return codes
