"""A small asyncio HTTP/1.1 client for load: one answer read off a stream, and a keep-alive
connection that carries the bench's API key."""

from __future__ import annotations

import asyncio
import contextlib
import time

from live_server import AUTH, HOST


async def read_response(reader: asyncio.StreamReader, with_body: bool = False
                        ) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one HTTP/1.1 answer: status, headers (lower-case names) and the body (read
    whole — by Content-Length, chunked, or none for 1xx/204/304 — kept when ``with_body``).
    Raises ``asyncio.IncompleteReadError`` when the connection closes first."""
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    status = int(line[9:12])
    headers: dict[bytes, bytes] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if status in (204, 304) or status < 200:
        return status, headers, body
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            if with_body:
                parts.append(chunk[:-2])
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body if with_body else b""


#: uvicorn closes a keep-alive connection idle for 5 s (its default): one idle this long is
#: reopened before use, as browsers do, so a close racing a request is not taken for an error.
IDLE_REOPEN_S = 3.0


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened after ``recycle`` requests, an error or
    :data:`IDLE_REOPEN_S` idle."""

    def __init__(self, port: int, recycle: int, timeout: float) -> None:
        self.port, self.recycle, self.timeout = port, recycle, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0
        self.last = 0.0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, with_body: bool = False
                      ) -> tuple[int, dict[bytes, bytes], bytes]:
        if (self.writer is None or self.used >= self.recycle
                or time.monotonic() - self.last > IDLE_REOPEN_S):
            await self.close()
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port), self.timeout)
            self.used = 0
        assert self.reader is not None
        self.used += 1
        head = {"Host": f"{HOST}:{self.port}", **AUTH, **(headers or {})}
        if body:
            head["Content-Length"] = str(len(body))
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        try:
            self.writer.write(raw.encode("latin-1") + body)
            answer = await asyncio.wait_for(read_response(self.reader, with_body),
                                            self.timeout)
        except BaseException:
            await self.close()
            raise
        self.last = time.monotonic()
        if answer[1].get(b"connection", b"").lower() == b"close":
            await self.close()
        return answer

