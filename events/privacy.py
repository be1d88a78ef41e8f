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
#: Words after which free text names a person (联系人张三, 当事人：李四, 户主为王小明): the
#: 2-4 Chinese characters after them are masked as a name.
_LABELLED = re.compile(
    r"(姓名|联系人|报告人|报告者|举报人|反映人|投诉人|被投诉人|求助人|来电人|报警人|当事人|当事方|"
    r"户主|业主|住户|租户|房东|经办人|处理人|网格员)"
    r"(\s*(?:[:：]|为|是)?\s*)([\u4e00-\u9fff·]{2,4})")
_AFTER_NAME = re.compile(r"电话|手机|联系|反映|投诉|举报|称|说|报|的|在|家|住|等|和|与|及")
#: Not people: the event sources and the system's own actors.
_NOT_NAMES = frozenset({"patrol", "citizen", "hotline", "sensor"})


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
    if not _is_person(name):
        return name
    if _PHONE.search(name):
        return mask_text(name)
    return name[0] + "*" * max(1, len(name) - 1)


def _is_person(name: str) -> bool:
    return name not in _NOT_NAMES and not name.startswith("system")


def mask_free_text(text: str | None, names: list[str] | tuple[str, ...] = ()) -> str | None:
    """Free text with people masked: every phone number, every one of ``names`` (the event's
    reporter, handler, actors, grid worker: 张三 -> 张*) wherever it occurs, and the name
    after a word that introduces one (联系人张三 -> 联系人张*)."""
    if text is None:
        return None
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2
                        and _is_person(n.strip())}, key=len, reverse=True):
        text = text.replace(name, name[0] + "*" * (len(name) - 1))
    return mask_text(_LABELLED.sub(_mask_labelled, text))


def _mask_labelled(match: re.Match[str]) -> str:
    label, gap, name = match.groups()
    # The name ends where a word that follows names often starts (联系人李四电话…).
    cut = _AFTER_NAME.search(name, 2)
    rest = name[cut.start():] if cut else ""
    name = name[:cut.start()] if cut else name
    return label + gap + name[0] + "*" * (len(name) - 1) + rest


def event_names(event: dict[str, Any]) -> list[str]:
    """The people an event names in its own fields: reporter, handler, the history's actors
    and handlers, the routing's grid worker."""
    names = [event.get(k) for k in NAME_FIELDS]
    for h in event.get("history") or []:
        names += [h.get("actor"), h.get("handler")]
    routing = event.get("routing")
    if isinstance(routing, dict):
        names += re.split(r"[、,，;；\s]+", str(routing.get("grid_worker") or ""))
    return [str(n) for n in names if n]


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event with names and phone numbers masked (a copy; history and routing too): the
    name fields, and in the free text (description, feedback, the history's reasons) phone
    numbers and the names of the event's people (:func:`mask_free_text`)."""
    out = dict(event)
    names = event_names(event)
    for k in NAME_FIELDS:
        if k in out:
            out[k] = mask_name(out[k])
    for k in TEXT_FIELDS:
        if k in out:
            out[k] = mask_free_text(out[k], names)
    if "history" in out:
        out["history"] = [{**h, "actor": mask_name(h.get("actor")),
                           **({"handler": mask_name(h.get("handler"))} if "handler" in h
                              else {}),
                           "reason": mask_free_text(h.get("reason"), names)}
                          for h in out["history"]]
    if isinstance(out.get("routing"), dict):
        out["routing"] = mask_routing(out["routing"])
    return out


def mask_routing(answer: dict[str, Any]) -> dict[str, Any]:
    """A routing answer with the grid worker's name masked."""
    if answer.get("grid_worker"):
        return {**answer, "grid_worker": mask_name(answer["grid_worker"])}
    return answer
