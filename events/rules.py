"""Event rules: categories, sources, time limits per category and level, traffic lights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gis.errors import GridmapError

#: The chain an event climbs when a level cannot resolve it (one level at a time).
LEVELS = ("grid", "station", "town", "district", "department")
LEVEL_NAMES = {"grid": "网格", "station": "村/社区工作站", "town": "镇/街道中心",
               "district": "区综治中心", "department": "职能部门"}
SOURCES = {"patrol": "网格员巡查", "citizen": "群众上报", "hotline": "热线", "sensor": "物联感知"}

#: Hours allowed at each level, by category (the default table; configurable).
DEFAULT_LIMITS: dict[str, dict[str, float]] = {
    "safety_hazard": {"grid": 4, "station": 8, "town": 24, "district": 48, "department": 72},
    "dispute": {"grid": 24, "station": 48, "town": 72, "district": 120, "department": 168},
    "sanitation": {"grid": 24, "station": 48, "town": 72, "district": 120, "department": 168},
    "municipal": {"grid": 48, "station": 72, "town": 120, "district": 168, "department": 240},
    "livelihood": {"grid": 72, "station": 120, "town": 168, "district": 240, "department": 360},
    "other": {"grid": 72, "station": 120, "town": 168, "district": 240, "department": 360},
}
CATEGORY_NAMES = {"safety_hazard": "安全隐患", "dispute": "矛盾纠纷", "sanitation": "环境卫生",
                  "municipal": "市政设施", "livelihood": "民生服务", "other": "其他"}


class EventError(GridmapError):
    """An event or a step of its workflow breaks the rules (says which and why)."""

    code = "event-error"


@dataclass(frozen=True)
class Rules:
    """Time limits (hours) by category and level, and where yellow starts."""

    limits: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    #: Yellow in the last this share of the limit (0.2: the last 20%).
    yellow_share: float = 0.2

    @classmethod
    def load(cls, path: str | Path | None, yellow_share: float = 0.2) -> Rules:
        """The default table, or one from a JSON file ``{category: {level: hours}}``."""
        if path is None or str(path) == "":
            return cls(yellow_share=yellow_share)
        try:
            table = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GridmapError(f"event rules file {path}: {exc}") from exc
        if not isinstance(table, dict) or not table:
            raise GridmapError(f"event rules file {path} must map categories to "
                               '{"grid": hours, "station": hours, ...}')
        for category, row in table.items():
            missing = [lv for lv in LEVELS if not isinstance(row, dict) or lv not in row]
            if missing:
                raise GridmapError(f"event rules file {path}: category {category!r} has no "
                                   f"time limit for {', '.join(missing)}")
        return cls({c: {lv: float(h) for lv, h in row.items()} for c, row in table.items()},
                   yellow_share)

    def check_category(self, category: str) -> str:
        if category not in self.limits:
            raise EventError(f"unknown category {category!r}; use one of "
                             + ", ".join(f"{c} ({CATEGORY_NAMES.get(c, c)})"
                                         for c in self.limits))
        return category

    def limit(self, category: str, level: str) -> timedelta:
        return timedelta(hours=self.limits[self.check_category(category)][level])

    def deadline(self, category: str, level: str, since: datetime) -> datetime:
        return since + self.limit(category, level)

    def light(self, deadline: datetime | None, limit: timedelta, now: datetime,
              closed_at: datetime | None = None) -> str:
        """green (on time), yellow (in the last ``yellow_share`` of the limit), red (overdue).

        A finished event keeps the colour it finished with: green when resolved by
        its deadline, red when late.
        """
        if deadline is None:
            return "green"
        if closed_at is not None:
            return "green" if closed_at <= deadline else "red"
        if now > deadline:
            return "red"
        if now >= deadline - limit * self.yellow_share:
            return "yellow"
        return "green"


def next_level(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


def describe() -> dict[str, Any]:
    """The rules a client needs to build forms (categories, sources, levels)."""
    return {"categories": CATEGORY_NAMES, "sources": SOURCES, "levels": LEVEL_NAMES}
