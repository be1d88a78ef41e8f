"""Decoding a text file's bytes: UTF-8 or GBK/GB18030, a file of mixed encodings refused."""

from __future__ import annotations

import re

from gis.errors import GridmapError, LayerError

_CJK = re.compile("[^\x00-\x7f\u2000-\u206f\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def decode_text(raw: bytes, encoding: str | None, label: str,
                option: str = "--encoding") -> str:
    """A text file's bytes as text: in ``encoding`` if given, else UTF-8 (with or without a
    BOM) or GB18030/GBK. A file of UTF-8 lines with some GBK ones (two files pasted together,
    a line edited in another editor) is refused naming a line of each rather than read as
    mojibake: it is taken as mixed when the lines that are UTF-8 Chinese are as many as the
    others, or at least 3 and 1% of them (GBK text is valid UTF-8 only by rare accident)."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError as exc:
            raise GridmapError(f"unknown encoding {encoding!r} (e.g. utf-8, gbk)") from exc
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise LayerError(f"is not {encoding} text: byte {exc.start:,} (line {line}) cannot "
                             f"be decoded; say which encoding the file is in with {option} "
                             "(utf-8, gbk)", file=label) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    utf8_lines: list[int] = []
    other_lines: list[int] = []
    for number, row in enumerate(raw.splitlines(), start=1):
        if row.isascii():
            continue
        try:
            text = row.decode("utf-8")
        except UnicodeDecodeError:
            other_lines.append(number)
            continue
        if not _CJK.search(text):
            utf8_lines.append(number)
    n_utf8, n_other = len(utf8_lines), len(other_lines)
    if n_utf8 and n_other and (n_utf8 >= n_other or n_utf8 >= max(3, n_other // 100)):
        raise LayerError(f"mixes encodings: line {utf8_lines[0]} is UTF-8 but line "
                         f"{other_lines[0]} is not (GBK?), {n_other:,} such lines; save the "
                         "whole file in one encoding (UTF-8)", file=label)
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise LayerError(f"is neither UTF-8 ({utf8_error.reason} at byte {utf8_error.start:,}) "
                         f"nor GBK/GB18030 text ({exc.reason} at byte {exc.start:,}); say which "
                         f"encoding the file is in with {option}", file=label) from exc
