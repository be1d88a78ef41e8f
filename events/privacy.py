"""Personal data in events masked for roles that do not need it: names and phone numbers."""

from __future__ import annotations

import re
from typing import Any

#: Mainland mobile numbers (1[3-9] + 9 digits) and landlines (0 + 2–3 digit area code +
#: 7–8 digits, with or without a dash), not inside longer digit runs such as area codes.
_PHONE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
#: Event fields holding a person's name, and free text that may hold a phone number.
NAME_FIELDS = ("reporter", "handler")
TEXT_FIELDS = ("description", "feedback")


def mask_phone(match: re.Match[str]) -> str:
    digits = match.group(0)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_text(text: str | None) -> str | None:
    """Free text with every phone number masked (138****5678)."""
    return None if text is None else _PHONE.sub(mask_phone, text)


def mask_name(name: str | None) -> str | None:
    """A person's name reduced to its first character (王**); phone numbers masked too. The
    event sources (patrol, hotline, ...) and system actors are not names and stay."""
    if not name:
        return name
    if name in ("patrol", "citizen", "hotline", "sensor") or name.startswith("system"):
        return name
    if _PHONE.search(name):
        return mask_text(name)
    return name[0] + "*" * max(1, len(name) - 1)


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event with names and phone numbers masked (a copy; history and routing too)."""
    out = dict(event)
    for k in NAME_FIELDS:
        if k in out:
            out[k] = mask_name(out[k])
    for k in TEXT_FIELDS:
        if k in out:
            out[k] = mask_text(out[k])
    if "history" in out:
        out["history"] = [{**h, "actor": mask_name(h.get("actor")),
                           "reason": mask_text(h.get("reason"))} for h in out["history"]]
    if isinstance(out.get("routing"), dict):
        out["routing"] = mask_routing(out["routing"])
    return out


def mask_routing(answer: dict[str, Any]) -> dict[str, Any]:
    """A routing answer with the grid worker's name masked."""
    if answer.get("grid_worker"):
        return {**answer, "grid_worker": mask_name(answer["grid_worker"])}
    return answer
