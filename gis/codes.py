"""Area codes (district 6, town 9, village/community 12, grid 15 digits): their check, and SQL
prefix filters that read a code literally (LIKE's ``%`` and ``_`` escaped)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

#: Digits of a code at each level (统计用区划代码 + a 3-digit grid serial).
LEVEL_DIGITS = {"district": 6, "town": 9, "village": 12, "grid": 15}
LEVEL_NAMES = {"district": "区/县 district", "town": "街道/镇 town",
               "village": "村/社区 village/community", "grid": "网格 grid"}
EXAMPLES = {"district": "440111", "town": "440111001", "village": "440111001001",
            "grid": "440111001001001"}
#: The character that escapes LIKE's wildcards in every prefix filter (never in a code).
LIKE_ESCAPE = "!"


def code_problem(value: str, *levels: str) -> str | None:
    """Why ``value`` is not a code of one of ``levels`` (every level when none given), in
    Chinese and English; None when it is one."""
    levels = levels or tuple(LEVEL_DIGITS)
    lengths = {LEVEL_DIGITS[level] for level in levels}
    if re.fullmatch(r"[0-9]+", value) and len(value) in lengths:
        return None
    what = "、".join(LEVEL_NAMES[level].split(" ")[0] for level in levels)
    wants = " or ".join(f"{LEVEL_DIGITS[level]} digits for a {LEVEL_NAMES[level].split(' ', 1)[1]}"
                        f" (e.g. {EXAMPLES[level]})" for level in levels)
    return (f"{what}代码应为 {'/'.join(str(LEVEL_DIGITS[lv]) for lv in levels)} 位数字 / "
            f"not an area code: {value[:40]!r}; give {wants}")


def check_code(value: str, *levels: str) -> str:
    """``value`` when it is a code of one of ``levels`` (every level when none given); else
    a ValueError saying what a code of those levels looks like (validation turns it into
    a 422)."""
    problem = code_problem(value, *levels)
    if problem is not None:
        raise ValueError(problem)
    return value


def escape_like(text: str) -> str:
    """``text`` for a LIKE pattern, matched literally (with ``ESCAPE '!'``)."""
    return (text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
            .replace("_", LIKE_ESCAPE + "_"))


def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` begins with ``prefix``, taken literally (no wildcard in it counts)."""
    result: ColumnElement[bool] = column.like(escape_like(prefix) + "%", escape=LIKE_ESCAPE)
    return result


def like_prefix_sql(column: str, param: str) -> str:
    """The same as SQL text, for hand-written statements: bind ``like_prefix_value(prefix)``
    to ``:param``."""
    return f"{column} LIKE :{param} ESCAPE '{LIKE_ESCAPE}'"


def like_prefix_value(prefix: str) -> str:
    return escape_like(prefix) + "%"
