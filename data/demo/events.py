"""Demo events (事件) at random points of a district's grids, for the command centre."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely

#: What the demo's events say, by category (Chinese, as a grid worker would write it).
EVENT_TEXTS = {
    "safety_hazard": ["楼道堆放杂物", "电动车违规充电", "消防通道被占用"],
    "dispute": ["邻里噪音纠纷", "停车位纠纷", "物业费纠纷"],
    "sanitation": ["垃圾未及时清运", "下水道堵塞", "绿化带垃圾堆积"],
    "municipal": ["路灯不亮", "井盖缺失", "人行道破损"],
    "livelihood": ["独居老人需要探访", "低保申请咨询", "自来水停水"],
    "other": ["流浪犬出没", "小广告乱贴", "共享单车乱停"],
}


def demo_events(grids: gpd.GeoDataFrame, n: int, seed: int, hours: float = 72.0
                ) -> dict[str, Any]:
    """``n`` events of the last ``hours`` hours at random points inside the given (WGS84)
    grids, more where more households live: columns lon, lat, category, source,
    description, reporter and age_h (hours before now), for the demo's command centre."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(grids["households"], dtype=float) + 50.0
    pick = rng.choice(len(grids), size=n, p=weights / weights.sum())
    lon = np.empty(n)
    lat = np.empty(n)
    geoms = grids.geometry.to_numpy()
    for i, g in enumerate(pick):
        poly = geoms[g]
        x0, y0, x1, y1 = poly.bounds
        for _ in range(100):   # rejection sampling; the grid's inner point if unlucky
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if poly.contains(shapely.Point(x, y)):
                break
        else:
            x, y = poly.representative_point().coords[0]
        lon[i], lat[i] = x, y
    categories = rng.choice(list(EVENT_TEXTS), size=n, p=[0.2, 0.1, 0.3, 0.2, 0.1, 0.1])
    sources = rng.choice(["patrol", "citizen", "hotline", "sensor"], size=n,
                         p=[0.5, 0.2, 0.25, 0.05])
    texts = [EVENT_TEXTS[c][int(rng.integers(3))] for c in categories]
    reporters = [f"网格员{int(rng.integers(1, 99)):02d}" for _ in range(n)]
    return {"lon": lon, "lat": lat, "category": categories.astype(object),
            "source": sources.astype(object), "description": np.array(texts, dtype=object),
            "reporter": np.array(reporters, dtype=object),
            "age_h": np.sort(rng.uniform(0, hours, n))[::-1]}
