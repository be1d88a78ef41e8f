"""The command-centre big screen (一屏观全局) and the live counts it shows."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["screen"])
