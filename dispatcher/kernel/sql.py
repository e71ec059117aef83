"""SQL lives in ``.sql`` files as named blocks, loaded once at import (STYLE.md, principle 1).

A domain declares the queries it uses as annotated attributes of a :class:`SqlFile`
subclass; the file ``<domain>.sql`` in ``dispatcher/sql`` (or in ``directory``) is parsed
when the class is defined, so an unknown or missing name fails at start-up, not mid-campaign::

    class TokenSQL(SqlFile, domain="tokens"):
        insert_token: str

Blocks start with ``-- name: <identifier>`` and run to the next such line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
#: The service's query files; a domain whose file lives elsewhere passes ``directory``.
SQL_DIR = Path(__file__).parent.parent / "sql"


class SqlLoadError(RuntimeError):
    """A query file is missing, malformed, or lacks a declared query."""


def parse_queries(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split ``text`` into ``{name: sql}`` blocks; duplicate names are an error."""
    matches = list(_NAME_LINE.finditer(text))
    queries: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = match.group(1)
        if name in queries:
            raise SqlLoadError(f"{source}: query {name!r} defined twice")
        body = text[match.end() : end].strip()
        if not body:
            raise SqlLoadError(f"{source}: query {name!r} is empty")
        queries[name] = body
    return queries


class SqlFile:
    """Base of per-domain query holders; see the module docstring."""

    domain: ClassVar[str]
    source: ClassVar[Path]

    def __init_subclass__(cls, *, domain: str, directory: Path = SQL_DIR, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        path = directory / f"{domain}.sql"
        try:
            queries = parse_queries(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise SqlLoadError(f"cannot read {path}: {exc}") from exc
        declared = [n for n, t in cls.__annotations__.items() if t in ("str", str)]
        missing = [name for name in declared if name not in queries]
        if missing:
            raise SqlLoadError(f"{path}: no query named {', '.join(missing)}")
        cls.domain = domain
        cls.source = path
        for name in declared:
            setattr(cls, name, queries[name])
