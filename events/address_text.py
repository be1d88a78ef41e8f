"""Chinese address text: one spelling (normalise, numerals), the words that end roads and admin
names, and the parts of an address (Parsed)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = re.compile(r"[零〇一二两三四五六七八九十百千]+")
#: Written variants mapped to one spelling (after NFKC, which makes full-width digits,
#: letters and punctuation half-width): 號→号, 幢/座/棟/号楼/#楼 → 栋, 衖/弄堂 → 巷, ….
_REPLACE = (
    ("號", "号"), ("棟", "栋"), ("幢", "栋"), ("號樓", "栋"), ("号楼", "栋"), ("#楼", "栋"),
    ("座", "栋"), ("衖", "巷"), ("弄堂", "巷"), ("衚衕", "胡同"), ("胡衕", "胡同"),
    ("街道办事处", "街道"), ("街道办", "街道"), ("居委会", "社区"), ("居民委员会", "社区"),
    ("村委会", "村"), ("村民委员会", "村"), ("交汇处", "交叉口"), ("交界处", "交叉口"),
    ("交界", "交叉口"), ("交汇", "交叉口"), ("十字路口", "交叉口"), ("路口", "路交叉口"),
    ("門", "门"), ("門牌", "门牌"), ("區", "区"), ("鎮", "镇"), ("華", "华"), ("園", "园"),
)
_DROP = re.compile(r"[\s,，。.、;；:：()（）\[\]【】\"“”'‘’<>《》]+")
PROVINCE = re.compile(r"^(?:[^省市区]{2,7}?(?:省|自治区|特别行政区))")
CITY = re.compile(r"^(?:[^省市区县]{2,6}?(?:市|自治州|地区|盟))")
NUMBER = re.compile(r"(\d+)(?:[-之](\d+))?号(?:院)?(?:(?:之|附|-)(\d+)(?![\d栋单号]))?")
BUILDING = re.compile(r"(\d+)栋")
UNIT = re.compile(r"(\d+)单元")
ROAD_END = ("大道", "大街", "横路", "直街", "横街", "胡同", "公路", "路", "街", "巷", "里", "道",
             "弄", "坊", "围", "约")
#: "A路与B路交叉口", "A路和B路路口", "A路B路交界": two roads (the first ends at a road word).
CROSS = re.compile(r"^(.+?(?:路|街|巷|道|里|弄|胡同))(.+?)交叉口")  # 路口/交界 normalised
JOIN = ("与", "和", "及", "同", "跟", "/", "&", "+", "、", "交")
ADMIN_SUFFIX = ("特别行政区", "自治区", "街道", "社区", "示范区", "新区", "省", "市", "区", "县",
                 "镇", "乡", "村")


def cn_to_int(text: str) -> int:
    """A Chinese numeral (八十八, 一百零五, 二〇八, 十二) as an integer."""
    if all(ch in _CN_DIGIT for ch in text):  # digit by digit: 二〇八 -> 208
        return int("".join(str(_CN_DIGIT[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGIT:
            current = _CN_DIGIT[ch]
        else:
            total += (current or 1) * _CN_UNIT[ch]
            current = 0
    return total + current


def normalise(text: str) -> str:
    """One spelling of an address: NFKC (full-width digits and letters half-width), no spaces
    or punctuation, traditional variants of the address words, 栋/幢/座/号楼 as 栋, Chinese
    numerals as digits (in names too, so 鹤龙二横路 and 鹤龙2横路 meet)."""
    text = unicodedata.normalize("NFKC", str(text or ""))
    for old, new in _REPLACE:
        text = text.replace(old, new)
    text = _DROP.sub("", text)
    text = text.replace("－", "-").replace("—", "-").replace("–", "-")
    return _CN_NUM.sub(lambda m: str(cn_to_int(m.group(0))), text)


def short_name(name: str) -> str:
    """An admin name without its level word (白云区 -> 白云, 鹤龙社区 -> 鹤龙)."""
    for suffix in ADMIN_SUFFIX:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass
class Parsed:
    """The parts of one address (normalised)."""

    text: str
    areas: list[str] = field(default_factory=list)  # admin codes named, outermost first
    road: str | None = None
    number: int | None = None
    sub_number: int | None = None
    compound: str | None = None
    building: int | None = None
    unit: int | None = None
    cross: tuple[str, str] | None = None
    rest: str = ""
    #: A short admin name before a road word was kept in the road (see AddressIndex.parse).
    ambiguous: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"areas": self.areas, "road": self.road, "house_number": self.number,
                "sub_number": self.sub_number, "compound": self.compound,
                "building_no": self.building, "unit": self.unit,
                "intersection": list(self.cross) if self.cross else None}


def split_road(text: str) -> tuple[str | None, str]:
    """The road at the end of ``text`` (everything up to its last road word), else None."""
    best = -1
    for end in ROAD_END:
        k = text.rfind(end)
        if k >= 0 and k + len(end) > best and k > 0:
            best = k + len(end)
    if best <= 0:
        return None, text
    return text[:best], text[best:]


def by_first(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys by their first character, longest first (prefix look-ups)."""
    out: dict[str, list[str]] = {}
    for key in sorted(keys, key=len, reverse=True):
        out.setdefault(key[:1], []).append(key)
    return out


def first_prefix(table: Mapping[str, Sequence[str]], text: str) -> str | None:
    """The longest key of ``table`` (made by :func:`by_first`) that starts ``text``, else None."""
    for key in table.get(text[:1], ()):
        if text.startswith(key):
            return key
    return None


def missing(value: Any) -> bool:
    """Whether a column's value says nothing (None, NaN, blank text)."""
    return value is None or (isinstance(value, float) and not np.isfinite(value)) or \
        (isinstance(value, str) and not value.strip())
