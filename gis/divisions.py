"""Statistical division codes (统计用区划代码): level by length, parents by prefix."""

from __future__ import annotations

from collections.abc import Iterable

#: Digits of a code by level (GB/T 2260 + the NBS town/village extension; a grid code is
#: its village's 12 digits and a 3-digit serial).
CODE_LENGTH = {"district": 6, "town": 9, "village": 12, "grid": 15}
LEVEL_OF_LENGTH = {n: level for level, n in CODE_LENGTH.items()}
#: The level of each level's parent.
PARENT_LEVEL = {"town": "district", "village": "town", "grid": "village"}


def level_of(code: object) -> str | None:
    """``district``/``town``/``village``/``grid`` for a 6/9/12/15-digit code, else None."""
    text = _text(code)
    return LEVEL_OF_LENGTH.get(len(text)) if text.isdigit() else None


def parent_code(code: object) -> str | None:
    """The code of the area one level up (its prefix), or None when ``code`` is not a
    statistical code of a level that has a parent."""
    level = level_of(code)
    parent = PARENT_LEVEL.get(level or "")
    return _text(code)[: CODE_LENGTH[parent]] if parent else None


def ancestor(code: object, level: str) -> str | None:
    """The code of the ``level`` area holding ``code`` (itself when it is of that level):
    the first 12 digits of a grid code are its village, the first 9 its town, the first 6
    its district. None when ``code`` is no statistical code or is above ``level``."""
    own = level_of(code)
    if own is None or CODE_LENGTH[own] < CODE_LENGTH[level]:
        return None
    return _text(code)[: CODE_LENGTH[level]]


def fill_parents(codes: Iterable[object], given: Iterable[object], level: str) -> list[str]:
    """``given`` with each empty value replaced by the ``level`` ancestor of the code beside
    it ('' where none can be derived): parent columns filled where a file left them out."""
    out = []
    for code, have in zip(codes, given, strict=True):
        text = _text(have)
        out.append(text or ancestor(code, level) or "")
    return out


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        if value != value:  # NaN, pd.NA raises
            return ""
    except (TypeError, ValueError):
        return ""
    return str(value).strip()
