"""Plain ASGI middleware: the base of those that act on HTTP requests only."""

from __future__ import annotations

from typing import Any


class HttpMiddleware:
    """An ASGI middleware that acts on HTTP requests only (:meth:`http`); every other scope
    (lifespan, websockets) goes straight to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError
