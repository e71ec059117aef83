"""URL helpers for tests."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead (keeps host, socket dir and credentials)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))
