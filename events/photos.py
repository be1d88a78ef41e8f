"""Photos of events: checked (type by content, size, pixels), stored, listed, served."""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from gis.errors import GridmapError, NotFound
from gis.models.base import iso
from gis.models.events import Event, EventHistory, EventPhoto
from gis.paging import Page, Paged, read_page

#: What a photo may be: the format Pillow reads from its bytes -> the media type served.
TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
PHOTOS = EventPhoto.__table__


class PhotoError(GridmapError):
    """A photo that is not a JPEG, PNG or WebP image (whatever its name or header says)."""

    code = "unsupported-photo"


class PhotoTooLarge(PhotoError):
    """A photo over the size or pixel limit, or one photo too many for the event."""

    code = "photo-too-large"


def check_photo(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    """The media type, width and height of a photo; :class:`PhotoError` for anything that is
    not a readable JPEG/PNG/WebP, :class:`PhotoTooLarge` over ``max_bytes`` or
    ``max_pixels`` (a decompression bomb is refused before it is decoded)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise PhotoTooLarge(f"照片过大 the photo is {len(data) // 1024} kB, more than "
                            f"{max_bytes // 1024} kB (GRIDMAP_PHOTO_MAX_KB): resize it "
                            "(the phone page does) and send it again")
    if not data:
        raise PhotoError("照片为空 the photo is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                if width * height > max_pixels:
                    raise PhotoTooLarge(f"照片像素过多 the photo has {width}×{height} pixels, "
                                        f"more than {max_pixels}: resize it")
                image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
            raise PhotoTooLarge(f"照片像素过多 the photo has too many pixels: {exc}") from exc
        raise PhotoError("不是可读的图片 the file is not a readable JPEG, PNG or WebP image "
                         f"({type(exc).__name__}): send a photo") from exc
    if fmt not in TYPES:
        raise PhotoError(f"不支持的图片格式 {fmt}: send a JPEG, PNG or WebP photo")
    return TYPES[fmt], int(width), int(height)


def add_photo(engine: Engine, event_id: int, data: bytes, *, by: str, now: datetime,
              max_bytes: int, max_pixels: int, max_count: int) -> dict[str, Any]:
    """Store a checked photo of the event, and a line in the event's history saying so (one
    transaction); the photo's description."""
    content_type, width, height = check_photo(data, max_bytes=max_bytes, max_pixels=max_pixels)
    with engine.begin() as conn:
        event = conn.execute(select(Event.status, Event.level).where(
            Event.id == event_id)).first()
        if event is None:
            raise NotFound(f"no event {event_id}")
        count = conn.execute(select(func.count()).select_from(PHOTOS).where(
            PHOTOS.c.event_id == event_id)).scalar_one()
        if count >= max_count:
            raise PhotoTooLarge(f"事件照片已达上限 event {event_id} has {count} photos, the "
                                f"most it may have (GRIDMAP_PHOTOS_PER_EVENT)")
        photo_id = conn.execute(insert(EventPhoto).values(
            event_id=event_id, content_type=content_type, size=len(data), width=width,
            height=height, data=data, uploaded_by=by, uploaded_at=now)
            .returning(EventPhoto.id)).scalar_one()
        conn.execute(insert(EventHistory).values(
            event_id=event_id, from_status=event.status, to_status=event.status,
            level=event.level, actor=by, at=now, reason=f"photo {photo_id} 上传照片"))
    return {"id": int(photo_id), "event_id": event_id, "content_type": content_type,
            "size": len(data), "width": width, "height": height, "uploaded_by": by,
            "uploaded_at": iso(now), "url": photo_url(event_id, int(photo_id))}


def photo_url(event_id: int, photo_id: int) -> str:
    return f"/events/{event_id}/photos/{photo_id}"


def list_photos(engine: Engine, event_id: int) -> list[dict[str, Any]]:
    """The event's photos (without their bytes), oldest first."""
    return photos_page(engine, event_id, None).items


def photos_page(engine: Engine, event_id: int, page: Page | None) -> Paged[dict[str, Any]]:
    """A page of :func:`list_photos`."""
    cols = [c for c in PHOTOS.c if c.name != "data"]
    with engine.connect() as conn:
        found = read_page(conn, select(*cols).where(PHOTOS.c.event_id == event_id)
                          .order_by(PHOTOS.c.id), page)
    return found.map(lambda r: {**r._mapping, "uploaded_at": iso(r.uploaded_at),
                                "url": photo_url(event_id, int(r.id))})


def read_photo(engine: Engine, event_id: int, photo_id: int) -> tuple[bytes, str]:
    """A photo's bytes and media type; 404 unless it is a photo of that event."""
    with engine.connect() as conn:
        row = conn.execute(select(PHOTOS.c.data, PHOTOS.c.content_type).where(
            PHOTOS.c.id == photo_id, PHOTOS.c.event_id == event_id)).first()
    if row is None:
        raise NotFound(f"no photo {photo_id} of event {event_id}")
    return bytes(row.data), str(row.content_type)
