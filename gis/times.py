"""Times as people read them: in the server's zone (GRIDMAP_TIMEZONE), with the zone named."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

#: Zones whose clocks are Beijing time: named 北京时间 on the pages.
BEIJING_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking",
                           "Asia/Harbin", "PRC"})


def aware(moment: datetime) -> datetime:
    """A stored time with its zone: SQLite hands back naive UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def offset_text(moment: datetime, zone: str) -> str:
    """The zone's offset at that moment: ``UTC+8``, ``UTC-3:30``, ``UTC``."""
    offset = aware(moment).astimezone(ZoneInfo(zone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    hours, rest = divmod(minutes, 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_label(zone: str, moment: datetime | None = None) -> str:
    """What the pages call the zone: ``北京时间（UTC+8）`` or ``Europe/Berlin（UTC+1）``."""
    offset = offset_text(moment or datetime.now(UTC), zone)
    if zone.upper() in ("UTC", "ETC/UTC", "GMT", "ETC/GMT", "ZULU"):
        return offset
    return f"{'北京时间' if zone in BEIJING_ZONES else zone}（{offset}）"


def local_text(moment: datetime | str | None, zone: str) -> str:
    """``2026-05-01 10:59`` in the zone (empty for no time); text is read as ISO 8601."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return aware(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def page_zone(zone: str) -> dict[str, str]:
    """The zone as a page's script takes it: the IANA name (for Intl) and the label."""
    return {"name": zone, "label": zone_label(zone)}
