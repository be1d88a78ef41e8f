"""Security headers on every response: the pages' Content-Security-Policy, nosniff, no framing,
and a same-origin referrer (plain ASGI, as api/audit.py, for speed)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Headers every answer carries, page or not.
COMMON = ((b"x-content-type-options", b"nosniff"),
          (b"x-frame-options", b"DENY"),
          (b"referrer-policy", b"same-origin"))
#: What an answer that is not a page (JSON, GeoJSON, tiles, files) may do if a browser
#: renders it anyway: nothing.
NOT_A_PAGE = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def basemap_source(url: str) -> str | None:
    """The CSP source of a basemap's tile URL template (``{s}``, ``{z}``... placeholders):
    its scheme, host and port, a placeholder in the host widened to ``*.`` of the labels
    after it; None for a basemap served by this site (``/tiles/…``) or no basemap."""
    if not url:
        return None
    relative = url.startswith("//")   # the page's own scheme: name the host alone
    if relative:
        url = "https:" + url
    parts = urlsplit(url.replace("{", "%7B").replace("}", "%7D"))
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.netloc.rsplit("@", 1)[-1].replace("%7B", "{").replace("%7D", "}")
    name, _, port = host.partition(":") if not host.startswith("[") else (host, "", "")
    labels = name.split(".")
    templated = [i for i, label in enumerate(labels) if "{" in label or "}" in label]
    if templated:
        labels = ["*", *labels[templated[-1] + 1:]]
    if not re.fullmatch(r"[A-Za-z0-9*.\-\[\]:]+", ".".join(labels)) or labels == ["*"]:
        raise ValueError(f"GRIDMAP_BASEMAP_URL: cannot tell the basemap's host from {url!r}; "
                         "give a URL such as https://{s}.tile.example.cn/{z}/{x}/{y}.png")
    port = port if port and not ("{" in port or "}" in port) else ""
    scheme = "" if relative else f"{parts.scheme}://"
    return f"{scheme}{'.'.join(labels)}" + (f":{port}" if port else "")


def page_policy(basemap_url: str = "", labels_url: str = "") -> str:
    """The pages' Content-Security-Policy: scripts and styles from this site only (no inline
    script, no eval, no inline style), images also from data:/blob: and the hosts of the
    basemap and its label layer (天地图's ``*.tianditu.gov.cn`` only when it is configured),
    nothing embedded, no framing, forms and <base> to this site only."""
    images = ["'self'", "data:", "blob:"]
    for url in (basemap_url, labels_url):
        source = basemap_source(url)
        if source and source not in images:
            images.append(source)
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {' '.join(images)}",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ))


class SecurityHeaders:
    """Adds :data:`COMMON` to every answer, and the page policy to every HTML answer (the
    strict :data:`NOT_A_PAGE` to the others); headers a route set itself are kept."""

    def __init__(self, app: ASGIApp, basemap_url: str = "", labels_url: str = "") -> None:
        self.app = app
        self.page = page_policy(basemap_url, labels_url).encode()
        self.other = NOT_A_PAGE.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                html = any(k.lower() == b"content-type" and v.lower().startswith(b"text/html")
                           for k, v in headers)
                for name, value in COMMON:
                    if name not in names:
                        headers.append((name, value))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy",
                                    self.page if html else self.other))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
