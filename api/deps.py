"""FastAPI dependencies: the store's engine and the settings, from the app's state."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from gis.settings import Settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
