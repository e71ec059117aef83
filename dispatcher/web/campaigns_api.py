"""Campaign endpoints of the HTTP contract (DESIGN.md)."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Register the campaign routes."""
