"""Named exceptions for bad input and failed operations; each says what to fix."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path


def msg(zh: str, en: str) -> str:
    """A message people read, in Chinese with the English after it: ``中文（English）``. Every
    bilingual message assembled from its two halves is made here."""
    return f"{zh}（{en}）"


class GridmapError(Exception):
    """Base of every error gridmap reports to a user (never a bare stack trace)."""

    #: A short, stable identifier; the API turns it into a problem type.
    code = "gridmap-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CRSError(GridmapError):
    """A coordinate system is unknown, missing, or does not fit the data."""

    code = "crs-error"


class CoordinateError(GridmapError):
    """Coordinates are swapped, outside China, or not finite."""

    code = "coordinate-error"


class LayerError(GridmapError):
    """A territory layer breaks the layer contract (docs/data-format.md).

    Carries where the problem is: the file, the layer, and the row (0-based
    feature index in the file) when one row is at fault.
    """

    code = "layer-error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        layer: str | None = None,
        row: int | None = None,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"layer {layer}" if layer else "",
                f"row {row}" if row is not None else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.layer = layer
        self.row = row
        self.reason = message


class DatabaseError(GridmapError):
    """The store is unreachable or its schema is not what gridmap expects."""

    code = "database-error"


class ComputeUnavailable(GridmapError):
    """The Dask cluster that computes partitions cannot be reached (docs/scale.md)."""

    code = "compute-unavailable"


class NotFound(GridmapError):
    """Something asked for by id or code does not exist."""

    code = "not-found"


class Conflict(GridmapError):
    """The request clashes with the state of what is stored (e.g. publishing twice)."""

    code = "conflict"


class EditRefused(GridmapError):
    """A plan edit would break a grid's contiguity or nesting, or cannot be made as asked."""

    code = "edit-refused"


class GridLocked(Conflict):
    """A plan edit touches a locked grid (unlock it first)."""

    code = "grid-locked"


class PreconditionRequired(GridmapError):
    """An edit of a draft plan does not name the plan version it was made on (If-Match)."""

    code = "precondition-required"


class StaleVersion(Conflict):
    """An edit was made on an older version of the draft plan than the stored one."""

    code = "stale-version"

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.current = current


class LimitExceeded(LayerError):
    """An upload or file holds more than a configured limit allows (docs/limits.md).

    Says which limit, its value and the ``GRIDMAP_*`` setting that raises it; nothing is
    read further and nothing is stored.
    """

    def __init__(self, message: str, *, setting: str, limit: int, file: str | None = None,
                 layer: str | None = None, row: int | None = None) -> None:
        env = f"GRIDMAP_{setting.upper()}"
        super().__init__(f"{message} (limit {limit:,}; the setting {env} raises it)",
                         file=file, layer=layer, row=row)
        self.setting = env
        self.limit = limit


def gdal_reason(exc: Exception, path: str | Path, label: str) -> str:
    """GDAL's message about a file, with the server's path of it replaced by its label (an
    upload's temporary folder is nobody's business), on one line."""
    text = " ".join(str(exc).split()).replace(str(path), label)
    return _TEMP_PATH.sub("", text)


_TEMP_PATH = re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/gridmap-[^/\s']*/")
