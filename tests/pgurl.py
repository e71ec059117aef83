"""URL helpers for tests."""

from __future__ import annotations

from dispatcher.db import with_database

__all__ = ["with_database"]
