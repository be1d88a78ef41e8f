"""Unpacking a .zip upload safely: members, sizes and ratios checked before anything is written."""

from __future__ import annotations

import lzma
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from pathlib import Path

from gis.errors import LayerError, LimitExceeded
from gis.io.limits import ReadLimits

#: Compression methods Python's zipfile unpacks (stored, deflate, bzip2, LZMA).
ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                         zipfile.ZIP_LZMA})
#: A member's unpacked/packed ratio is checked only above this unpacked size (bytes).
ZIP_RATIO_FROM = 2**20


def _zip_entry_count(path: Path) -> int | None:
    """The member count an archive's end record declares (read before Python parses the
    whole central directory, which a hostile archive can make huge); None if not found."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - (22 + 65_535), 0))
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        count = int(struct.unpack("<H", tail[at + 10:at + 12])[0])
        if count != 0xFFFF:
            return count
        loc = tail.rfind(b"PK\x06\x07", 0, at)  # ZIP64 end record locator
        if loc < 0 or loc + 20 > len(tail):
            return None
        offset = int(struct.unpack("<Q", tail[loc + 8:loc + 16])[0])
        if offset + 56 > size:
            return None
        fh.seek(offset)
        record = fh.read(56)
        if record[:4] != b"PK\x06\x06":
            return None
        return int(struct.unpack("<Q", record[32:40])[0])


def _member_path(name: str) -> tuple[str, ...] | None:
    """A member name as path parts inside the archive, or None if it points outside."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        return None
    parts = tuple(p for p in clean.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def unzip(archive: Path, dest: Path, limits: ReadLimits) -> list[str]:
    """Unpack a .zip into ``dest`` after checking it against ``limits``; the member names.

    Refused before anything is unpacked: more members than ``max_zip_members``, declared
    unpacked sizes over ``max_unzipped_mb`` in all, a member over 1 MB that unpacks more
    than ``max_zip_ratio`` times its packed size (a zip bomb), a member named outside the
    archive (``../``, an absolute path), a symbolic link, an encrypted member, an unknown
    compression method. While unpacking, no member may give more bytes than it declares.
    """
    label = archive.name
    declared = _zip_entry_count(archive)
    if declared is not None and declared > limits.max_zip_members:
        raise LimitExceeded(f"the archive has {declared:,} members", setting="max_zip_members",
                            limit=limits.max_zip_members, file=label)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise LayerError(f"cannot be read as a .zip archive: {exc}", file=label) from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and "__MACOSX" not in i.filename]
        if len(infos) > limits.max_zip_members:
            raise LimitExceeded(f"the archive has {len(infos):,} members",
                                setting="max_zip_members", limit=limits.max_zip_members,
                                file=label)
        max_bytes = limits.max_unzipped_mb * 2**20
        total = 0
        seen: set[str] = set()
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        for info in infos:
            where = f"{label}/{info.filename}"
            parts = _member_path(info.filename)
            if parts is None:
                raise LayerError("a member's name points outside the archive (../ or an "
                                 "absolute path); nothing was unpacked: make the archive "
                                 "again from the folder of layer files", file=where)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise LayerError("a member is a symbolic link; archives may hold only plain "
                                 "files: make the archive again without links", file=where)
            if info.flag_bits & 0x1:
                raise LayerError("a member is encrypted; upload the archive without a "
                                 "password", file=where)
            if info.compress_type not in ZIP_METHODS:
                raise LayerError(f"a member is packed with compression method "
                                 f"{info.compress_type}, which cannot be unpacked; use "
                                 "deflate (the usual .zip)", file=where)
            key = "/".join(parts).lower()
            if key in seen:
                raise LayerError("the archive holds this member twice; keep one",
                                 file=where)
            seen.add(key)
            total += info.file_size
            if total > max_bytes:
                raise LimitExceeded(f"the archive unpacks to more than "
                                    f"{limits.max_unzipped_mb:,} MB (declared sizes)",
                                    setting="max_unzipped_mb", limit=limits.max_unzipped_mb,
                                    file=label)
            if info.file_size > ZIP_RATIO_FROM and \
                    info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
                ratio = info.file_size / max(info.compress_size, 1)
                raise LimitExceeded(
                    f"a member unpacks {ratio:,.0f} times its packed size "
                    f"({info.compress_size:,} to {info.file_size:,} bytes): a zip bomb, or "
                    "data that is mostly padding", setting="max_zip_ratio",
                    limit=limits.max_zip_ratio, file=where)
            plan.append((info, parts))
        for info, parts in plan:
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(2**20):
                        written += len(chunk)
                        if written > info.file_size:
                            raise LayerError("a member unpacks to more bytes than the archive "
                                             "declares; the archive is damaged or forged",
                                             file=f"{label}/{info.filename}")
                        out.write(chunk)
            except LayerError:
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                    RuntimeError, NotImplementedError, struct.error, zlib.error,
                    lzma.LZMAError) as exc:
                raise LayerError(f"a member cannot be unpacked ({exc}); the archive is "
                                 "damaged", file=f"{label}/{info.filename}") from exc
        return ["/".join(parts) for _, parts in plan]


def unpacked(stack: ExitStack, root: Path, limits: ReadLimits, prefix: str) -> Path:
    """The folder to read ``root`` from: itself, or (a .zip) a temporary folder it is
    checked and unpacked into, removed when ``stack`` closes."""
    if root.is_file() and root.suffix.lower() == ".zip":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        unzip(root, folder, limits)
        return folder
    return root
