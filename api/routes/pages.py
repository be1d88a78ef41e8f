"""The planner's map of a plan (an HTML page)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["maps"])
