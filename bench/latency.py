"""Latency figures of a load benchmark: percentiles, max and mean, in milliseconds."""

from __future__ import annotations

import numpy as np


def latency_ms(ms: np.ndarray, percentiles: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """``p50``, ``p90``, … (``p99.9`` named ``p999``), ``max`` and ``mean`` of latencies in
    milliseconds, rounded to 0.01 ms."""
    out = {f"p{p:g}".replace(".", ""): round(float(np.percentile(ms, p)), 2)
           for p in percentiles}
    out.update(max=round(float(ms.max()), 2), mean=round(float(ms.mean()), 2))
    return out
