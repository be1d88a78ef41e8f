"""Vector tiles of a plan's grids (Mapbox Vector Tile)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["tiles"])
