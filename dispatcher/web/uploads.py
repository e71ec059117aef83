"""Uploads can't starve subscriber traffic (issue 13): admission, body deadlines, spooling,
and the 503 a request gets when no database connection comes free.

- At most ``SMARTD_UPLOAD_MAX_CONCURRENT`` uploads (audience CSV over the API or the console,
  subscriber import) are handled at once; one more is answered 503 ``uploads_busy`` with
  ``Retry-After`` at once, before its body is read. The cap is below the pool's size, so
  uploads never hold every connection.
- An upload's body is read first, whole, into a temporary file (in memory up to 1 MiB, then
  on disk), bounded by the upload's byte limit (413 as soon as it is passed), and within
  two deadlines: ``SMARTD_UPLOAD_IDLE_TIMEOUT`` without a byte, ``SMARTD_UPLOAD_BODY_TIMEOUT``
  for all of it (408 ``body_timeout``). Only then is a connection taken (and the campaign
  locked): a slow or stalled client holds a slot, never a connection nor a lock.
- A line that never ends stops the spooling early: once no line break came in
  ``4 × MAX_LINE`` bytes, what was read is handed on as the whole body; the CSV reader refuses
  it (400 ``line_too_long`` naming its line) before its end, and the spool's end refuses it
  anyway should the reader not (nothing of a truncated body is ever loaded).
- :func:`admission_middleware` bounds every database acquire of a request by
  ``SMARTD_DB_ACQUIRE_TIMEOUT`` (:func:`dispatcher.db.acquire_timeout`) and answers
  :class:`~dispatcher.db.PoolBusy` and :class:`Busy` with 503, ``Retry-After`` and the error
  shape, instead of leaving the request waiting.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

from aiohttp import web

from campaigns.csvstream import MAX_LINE, LineTooLong, TooLarge
from dispatcher.db import PoolBusy, acquire_timeout
from dispatcher.settings import Settings
from dispatcher.web.errors import ApiError, error_response
from dispatcher.web.keys import SETTINGS, Handler

CHUNK = 1 << 16
IN_MEMORY = 1 << 20  # a spooled body this small stays in memory
#: Bytes without a line break after which the body is read no further: more than any
#: MAX_LINE characters can take in UTF-8 (at most 4 bytes each).
LINE_BYTES = 4 * MAX_LINE
UPLOADS_RETRY_AFTER = 5  # seconds


class Busy(Exception):
    """The service is at a limit for this kind of request: HTTP 503 with ``Retry-After``."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


class UploadGate:
    """At most ``limit`` uploads at once; one more is refused, not queued (a client that
    is told to retry costs nothing, one that waits holds a socket and a handler)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.active >= self.limit:
            raise Busy(
                "uploads_busy",
                f"{self.limit} uploads are being handled; retry shortly",
                UPLOADS_RETRY_AFTER,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


UPLOADS = web.AppKey("uploads", UploadGate)


def install(app: web.Application, settings: Settings) -> None:
    """The upload gate of ``app`` (one per application)."""
    app[UPLOADS] = UploadGate(settings.upload_max_concurrent)


class BodyTimeout(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(408, "body_timeout", message)


class Spool:
    """A body read whole into a temporary file; :meth:`chunks` reads it back."""

    def __init__(self, file: IO[bytes], size: int, *, cut_at_line: int | None) -> None:
        self.file, self.size = file, size
        self.cut_at_line = cut_at_line  # the body was cut in a line that never ended

    async def chunks(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        # Reads of 64 KiB from a local temporary file are short: no thread for them.
        while chunk := self.file.read(CHUNK):
            yield chunk
        if self.cut_at_line is not None:
            raise LineTooLong(self.cut_at_line, MAX_LINE)


@asynccontextmanager
async def spooled_upload(
    request: web.Request, chunks: AsyncIterable[bytes], subject: str, max_bytes: int
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Admit the upload, read its body whole (see the module docstring) and give its chunks
    back for the loader; the slot is held until the block ends."""
    settings = request.app[SETTINGS]
    async with request.app[UPLOADS].admit():
        with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY) as file:
            spool = await _spool(chunks, file, settings, subject, max_bytes)
            yield spool.chunks()


async def _spool(
    chunks: AsyncIterable[bytes], file: IO[bytes], settings: Settings, subject: str, limit: int
) -> Spool:
    size, lines, unbroken = 0, 1, 0  # unbroken: bytes since the last line break
    source = aiter(chunks)
    try:
        async with asyncio.timeout(settings.upload_body_timeout):
            while True:
                try:
                    async with asyncio.timeout(settings.upload_idle_timeout):
                        chunk = await anext(source, None)
                except TimeoutError:
                    raise BodyTimeout(
                        f"the body sent nothing for {settings.upload_idle_timeout:g} s"
                    ) from None
                if chunk is None:
                    break
                size += len(chunk)
                if size > limit:
                    raise TooLarge(subject, limit)
                file.write(chunk)
                last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
                if last < 0:
                    unbroken += len(chunk)
                else:
                    lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                    unbroken = len(chunk) - last - 1
                if unbroken > LINE_BYTES:
                    return Spool(file, size, cut_at_line=lines)
    except TimeoutError:
        raise BodyTimeout(
            f"the body was not received whole within {settings.upload_body_timeout:g} s"
        ) from None
    return Spool(file, size, cut_at_line=None)


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Database acquires of this request wait at most ``db_acquire_timeout``; a request the
    service is too busy for gets 503 with ``Retry-After`` (see the module docstring)."""
    try:
        with acquire_timeout(request.app[SETTINGS].db_acquire_timeout):
            return await handler(request)
    except PoolBusy as exc:
        response = error_response(503, "database_busy", "the database is busy; retry shortly")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Busy as exc:
        response = error_response(503, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
