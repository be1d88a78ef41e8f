"""Chinese place-name generation for the demo territory.

Names are built from characters that are common in Guangzhou (Baiyun) place
names.  A :class:`NameBank` hands out unique two-character stems (three
characters once the two-character stems run out) in an order fixed by the
random generator, so the whole territory stays deterministic by seed.
"""

from __future__ import annotations

import numpy as np

# Characters seen in place names around Baiyun, Huadu and Conghua.
_FIRST = (
    "石井龙凤鹤岗塘沙田坑岭江高太和人钟潭新同德景泰云黄永平嘉禾望均棠溪萧槎"
    "元里松洲金夏大朗竹南北东西上下中湖鸦长红星白水五马柏荔湾蚌罗横岑民兴"
    "安乐福寿龟鸡鹅鱼茶桂梅兰桃李杨陈张林何梁邓谢冯蔡彭麦叶黎区卢旧青秀"
    "华盛富庆宝瑞祥隆昌泉峰洞"
)
_SECOND = (
    "井岗塘沙田坑岭头尾湖江边洲涌村围屋园庄滘口岸桥冲坪埔布朗坑基岭丰和"
    "兴隆安宁泰康乐富华新城林山美溪港湾庙亭塱沥坦"
)

# Well-known arterial names used first for primary roads.
ARTERIALS = (
    "白云大道",
    "机场路",
    "广园路",
    "云城大道",
    "同和路",
    "石井大道",
    "广从路",
    "黄石路",
    "增槎路",
    "嘉禾大道",
    "太和大道",
    "钟落潭大道",
    "沙太路",
    "远景路",
    "齐富路",
    "石沙路",
    "新广从路",
    "江高大道",
    "人和大道",
    "北太路",
)

#: Endings of residential compound (小区) names.
COMPOUND_SUFFIXES = ("花园", "小区", "苑", "新村", "雅苑", "名苑", "花城", "广场", "公寓", "家园")

RIVERS = ("流溪河", "白沙河", "石井河", "白坭河", "巴江河")
CREEKS = ("沙坑涌", "景泰涌", "新市涌", "田心涌", "马务涌", "鸦岗涌", "夏茅涌", "沙涌")
RIDGES = ("凤凰山脊", "帽峰山脊", "白云山脊", "天堂顶山脊", "九龙山脊")
RESERVOIRS = ("和龙水库", "福源水库", "大坑水库", "铜锣湾水库")
RAILWAYS = ("京广铁路", "广清城际铁路", "广州北环铁路")
SCENIC = ("帽峰山风景区", "白云山风景区", "凤凰山森林公园", "天堂顶生态景区")
CAMPUS = ("白云职业技术学院", "华南理工学院白云校区", "广东轻工学院", "南方医科大学白云校区")

_CN_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """Chinese numeral for 1 <= n <= 99 ("一", "十二", "二十", ...)."""
    if n < 1 or n > 99:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _CN_DIGITS[ones]
    head = "" if tens == 1 else _CN_DIGITS[tens]
    return head + "十" + (_CN_DIGITS[ones] if ones else "")


class NameBank:
    """Unique Chinese name stems drawn in a seed-determined order."""

    def __init__(self, rng: np.random.Generator) -> None:
        first = np.array(list(dict.fromkeys(_FIRST)))
        second = np.array(list(dict.fromkeys(_SECOND)))
        pairs = np.char.add(np.repeat(first, len(second)), np.tile(second, len(first)))
        keep = np.array([a[0] != a[1] for a in pairs])
        pairs = pairs[keep]
        self._two = [str(p) for p in pairs[rng.permutation(len(pairs))]]
        self._rng = rng
        self._next = 0
        self._used: set[str] = set()

    def stem(self) -> str:
        """A new, never handed out stem (two characters, three when exhausted)."""
        while self._next < len(self._two):
            s = self._two[self._next]
            self._next += 1
            if s not in self._used:
                self._used.add(s)
                return s
        # Three-character stems: a prefix character plus a two-character stem.
        while True:
            a = _FIRST[int(self._rng.integers(len(_FIRST)))]
            b = self._two[int(self._rng.integers(len(self._two)))]
            s = a + b
            if s not in self._used:
                self._used.add(s)
                return s

    def stems(self, n: int) -> list[str]:
        return [self.stem() for _ in range(n)]

    def reserve(self, name: str) -> None:
        """Mark a stem as used so it is never handed out."""
        self._used.add(name)
