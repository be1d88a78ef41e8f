"""Printable partition posters (网格划分图) of a town or community."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["posters"])
