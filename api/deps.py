"""FastAPI dependencies: the store's engine and the settings, from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from sqlalchemy import Engine

from gis.settings import Settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


#: A database id in a path: a positive 32-bit integer (larger ones cannot exist).
Id = Annotated[int, Path(ge=1, le=2**31 - 1, description="Id (a positive integer)")]
#: The same as an optional query parameter.
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
