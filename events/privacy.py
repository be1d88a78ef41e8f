"""Personal data in events masked for roles that do not need it: names and phone numbers."""

from __future__ import annotations

import re
from typing import Any

#: Phone numbers as people write them (found on a copy of the text with full-width digits,
#: plus signs, dashes, spaces and brackets made ASCII, one character for one, so that what is
#: found maps back onto the original): mainland mobiles, 1[3-9] + 9 digits, whole or as
#: 3-4-4 with spaces or dashes, after an optional +86 / 0086 / 86; landlines, a 0 + 2–3
#: digit area code (bracketed or not) and 7–8 digits (whole or as 3/4-4), or after +86 /
#: 0086 the area code without its 0. Never inside a longer run of digits (grid and area
#: codes are 6–15 digits).
_MOBILE = r"1[3-9]\d(?:[ -]?\d{4}){2}"
_LANDLINE = r"(?:\(0\d{2,3}\)|0\d{2,3})[ -]?\d{3,4}[ -]?\d{4}"
_FOREIGN_LANDLINE = r"\(?[1-9]\d{1,2}\)?[ -]?\d{3,4}[ -]?\d{4}"
_PHONE = re.compile(
    r"(?<![\d+])(?P<cc>(?:(?:\+|00)86|86(?=[ -]?1[3-9]))[ -]?)?"
    rf"(?P<num>{_MOBILE}|{_LANDLINE}|(?(cc){_FOREIGN_LANDLINE}|(?!)))(?!\d)")
_ASCII_DIGITS = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)},
                               "\uff0b": "+", "\uff0d": "-", "\u2010": "-", "\u2011": "-",
                               "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u3000": " ",
                               "\u00a0": " ", "\uff08": "(", "\uff09": ")"})
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


def phone_spans(text: str) -> list[tuple[int, int]]:
    """Where the phone numbers in ``text`` are: (start, end) of each number's own digits,
    without a country prefix (which stays readable)."""
    plain = text.translate(_ASCII_DIGITS)
    return [m.span("num") for m in _PHONE.finditer(plain)]


def mask_phones(text: str) -> str:
    """Every phone number in ``text`` masked: its first 3 and last 4 characters kept, the
    ones between starred (13812345678 → 138****5678, +86 139-1234-5678 → +86 139******5678,
    021-62345678 → 021*****5678, full-width digits alike)."""
    out = list(text)
    for start, end in phone_spans(text):
        for i in range(start + 3, end - 4):
            out[i] = "*"
    return "".join(out)


def has_phone(text: str) -> bool:
    return bool(phone_spans(text))


def mask_text(text: str | None) -> str | None:
    """Free text with every phone number masked (138****5678)."""
    return None if text is None else mask_phones(text)


def mask_name(name: str | None) -> str | None:
    """A person's name reduced to its first character (王**); phone numbers masked too. The
    event sources (patrol, hotline, ...) and system actors are not names and stay."""
    if not name:
        return name
    if not _is_person(name):
        return name
    spans = phone_spans(name)
    if spans:
        # A name with a phone number (张三13812345678, 李四 139-1234-5678): the number masked
        # as a number, the rest as a name.
        masked = mask_phones(name)
        out, last = [], 0
        for start, end in spans:
            out += [_mask_words(masked[last:start]), masked[start:end]]
            last = end
        return "".join([*out, _mask_words(masked[last:])])
    return name[0] + "*" * max(1, len(name) - 1)


def _mask_words(text: str) -> str:
    """Each word of a name part reduced to its first character (separators kept)."""
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0)[0] + "*" * max(1, len(m.group(0)) - 1),
                  text)


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
