"""Audience files kept between the console's upload and its column-mapping step.

A browser cannot send a chosen file again without the operator choosing it again, so when a
file's columns need mapping (a header in another language, or the operator asked to choose
them) the console keeps the received file in a temporary directory under an unguessable
token bound to the campaign, shows the file's header with selects, and loads the kept file
once the mapping is posted. A kept file is removed when it is loaded, and any left over
(an abandoned mapping step) after :data:`MAX_AGE` seconds, when the next one is kept.
The directory is the web process's host's: a deployment behind several hosts needs sticky
sessions for the mapping step (the API and the CLI take a mapping with the file itself).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

MAX_AGE = 3600  # seconds a kept file waits for its mapping
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


def directory() -> Path:
    path = Path(tempfile.gettempdir()) / f"smartd-audience-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _path(campaign_id: int, token: str) -> Path | None:
    if not _TOKEN.match(token):
        return None
    return directory() / f"{campaign_id}-{token}.csv"


async def keep(campaign_id: int, chunks: AsyncIterable[bytes]) -> str:
    """Write ``chunks`` to a new kept file of the campaign; returns its token."""
    _prune()
    token = secrets.token_urlsafe(24)
    path = _path(campaign_id, token)
    assert path is not None
    with open(path, "wb") as fh:  # noqa: ASYNC230 - a local temporary file
        async for chunk in chunks:
            fh.write(chunk)
    return token


def kept(campaign_id: int, token: str) -> Path | None:
    """The kept file of ``token`` for this campaign, if it is still there."""
    path = _path(campaign_id, token)
    return path if path is not None and path.is_file() else None


async def chunks_of(path: Path, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """The kept file's bytes, 64 KiB at a time."""
    with open(path, "rb") as fh:  # noqa: ASYNC230 - small sequential reads
        while chunk := fh.read(size):
            yield chunk


def discard(campaign_id: int, token: str) -> None:
    path = _path(campaign_id, token)
    if path is not None:
        path.unlink(missing_ok=True)


def _prune() -> None:
    limit = time.time() - MAX_AGE
    for path in directory().glob("*.csv"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
        except OSError:
            continue
