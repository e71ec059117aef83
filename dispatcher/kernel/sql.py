"""SQL lives in ``.sql`` files as named blocks, loaded once at import (STYLE.md, principle 1).

A domain declares the queries it uses as annotated attributes of a :class:`SqlFile`
subclass; the file ``<domain>.sql`` in ``dispatcher/sql`` (or in ``directory``) is parsed
when the class is defined, so an unknown or missing name fails at start-up, not mid-campaign::

    class TokenSQL(SqlFile, domain="tokens"):
        insert_token: str
        finish: PerTable

Blocks start with ``-- name: <identifier>`` and run to the next such line.

A block whose next line is ``-- for: <table>, <table>...`` is a template: one transition
written once for several tables of the same shape. ``{table}`` in its body is replaced by
each table's name, and its attribute (annotated :data:`PerTable`) maps each table to its
statement. A template must be declared ``PerTable`` and a plain block ``str``; either
mistake fails at class definition like an unknown name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

#: A statement generated for several tables from one template: table name → SQL.
PerTable = Mapping[str, str]

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_FOR_LINE = re.compile(r"\A--\s*for:\s*([a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*)\s*$", re.M)
_TABLE = "{table}"
#: The service's query files; a domain whose file lives elsewhere passes ``directory``.
SQL_DIR = Path(__file__).parent.parent / "sql"


class SqlLoadError(RuntimeError):
    """A query file is missing, malformed, or lacks a declared query."""


@dataclass(frozen=True, slots=True)
class Block:
    """One named block: its SQL, and the tables it is a template for (empty: plain SQL)."""

    sql: str
    tables: tuple[str, ...] = ()

    def per_table(self) -> PerTable:
        return MappingProxyType({t: self.sql.replace(_TABLE, t) for t in self.tables})


def parse_blocks(text: str, source: str = "<sql>") -> dict[str, Block]:
    """Split ``text`` into named blocks; duplicate names, empty bodies, a template without
    ``{table}`` and ``{table}`` outside a template are errors."""
    matches = list(_NAME_LINE.finditer(text))
    blocks: dict[str, Block] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = match.group(1)
        if name in blocks:
            raise SqlLoadError(f"{source}: query {name!r} defined twice")
        body = text[match.end() : end].strip()
        tables: tuple[str, ...] = ()
        if (header := _FOR_LINE.match(body)) is not None:
            tables = tuple(t.strip() for t in header.group(1).split(","))
            body = body[header.end() :].strip()
            if len(set(tables)) != len(tables):
                raise SqlLoadError(f"{source}: query {name!r} names a table twice")
            if _TABLE not in body:
                raise SqlLoadError(f"{source}: template {name!r} never uses {_TABLE}")
        elif _TABLE in body:
            raise SqlLoadError(f"{source}: query {name!r} uses {_TABLE} without '-- for:'")
        if not body:
            raise SqlLoadError(f"{source}: query {name!r} is empty")
        blocks[name] = Block(body, tables)
    return blocks


class SqlFile:
    """Base of per-domain query holders; see the module docstring."""

    domain: ClassVar[str]
    source: ClassVar[Path]

    def __init_subclass__(cls, *, domain: str, directory: Path = SQL_DIR, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        path = directory / f"{domain}.sql"
        try:
            blocks = parse_blocks(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise SqlLoadError(f"cannot read {path}: {exc}") from exc
        plain = [n for n, t in cls.__annotations__.items() if t in ("str", str)]
        templates = [n for n, t in cls.__annotations__.items() if t in ("PerTable", PerTable)]
        missing = [name for name in (*plain, *templates) if name not in blocks]
        if missing:
            raise SqlLoadError(f"{path}: no query named {', '.join(missing)}")
        as_str = [n for n in plain if blocks[n].tables]
        if as_str:
            raise SqlLoadError(
                f"{path}: {', '.join(as_str)}: a '-- for:' template, declare it PerTable"
            )
        as_template = [n for n in templates if not blocks[n].tables]
        if as_template:
            raise SqlLoadError(
                f"{path}: {', '.join(as_template)}: no '-- for:' line, declare it str"
            )
        cls.domain = domain
        cls.source = path
        for name in plain:
            setattr(cls, name, blocks[name].sql)
        for name in templates:
            setattr(cls, name, blocks[name].per_table())
