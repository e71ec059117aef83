"""The schema stays one Citus can distribute by msisdn (issue 16, point 6).

Read from the live catalog after every migration, so a later migration that drifts away (a key
without msisdn, a foreign key on an id alone, ``now()`` in an upsert) fails here, not on the day
the service moves onto Citus. The design this checks is written down in the README, "Past one
PostgreSQL (Citus)". Citus's rules, as met with Citus 14.0.1:

* a distributed table's primary and unique keys must contain its distribution column;
* a foreign key between distributed tables must pair their distribution columns (co-located
  tables); one from a reference table to a distributed one is refused;
* ``ON CONFLICT … DO UPDATE`` and ``RETURNING`` may call IMMUTABLE functions only (they
  run on each shard, not once on the coordinator: ``now()`` there is refused);
* a row count is the statement's own (``RETURNING``), not a command tag.

A table is per-subscriber (distributed by msisdn, all co-located) when it has an msisdn
column; the others are named below, each with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatcher.db import Database
from dispatcher.kernel.sql import parse_blocks

ROOT = Path(__file__).resolve().parent.parent
#: Every query file of the service: the named blocks of these are scanned for upserts.
SQL_FILES = sorted(
    [*(ROOT / "dispatcher" / "sql").glob("*.sql"), *(ROOT / "campaigns" / "sql").glob("*.sql")]
)
#: The Python that talks to the database: scanned for command tags read as row counts.
PYTHON_DIRS = (ROOT / "dispatcher", ROOT / "campaigns")

#: Reference tables: small, read by every shard's statements, written rarely, replicated to
#: every node. None has an msisdn column and none may point at a per-subscriber table.
REFERENCE_TABLES = {
    "campaigns": "every claim reads its campaign row beside the deliveries (kind, scope, end)",
    "surveys": "one row per survey campaign, read by every reply and question sent",
    "api_tokens": "authentication of API callers: a handful of rows, no subscriber in them",
    "console_sessions": "web console sign-ins, keyed by a token (a reference table itself)",
    "smsc_id_formats": "one row per SMSC, read by every receipt the applier matches",
    "smsc_members": "the replicas sharing an SMSC account: a row per live replica",
    "smsc_binds": "each engine's SMPP bind, read by the campaign status: a row per engine",
    "job_runs": "one row per periodic job and period (the monthly grant)",
    "schema_migrations": "the migrations applied, one row each",
    "audit_events": "operator actions (a few a day), append-only; no subscriber in them",
}

#: Distributed tables not co-located with the subscribers: table → (distribution column, why).
#: Their keys must contain that column, and none may point at a per-subscriber table.
DISTRIBUTED_OTHERWISE = {
    "audience_uploads": (
        "campaign_id",
        "one row per audience file uploaded to a campaign, read with the campaign",
    ),
    "audience_rejections": (
        "campaign_id",
        "a rejected audience row may hold no valid number, so it cannot sit beside a "
        "subscriber; read per campaign (download) and per campaign and number (why)",
    ),
    "survey_answers": (
        "survey_id",
        "R11: an answer carries no number, so it cannot sit beside its session; results are "
        "counted per survey",
    ),
}

#: SQL-standard clock functions parsed as keywords (not in pg_proc under these names).
CLOCK_KEYWORDS = (
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the checks read from pg_catalog."""

    tables: frozenset[str]
    per_subscriber: frozenset[str]
    unique_keys: tuple[tuple[str, str, tuple[str, ...], bool], ...]  # table, index, cols, expr
    foreign_keys: tuple[tuple[str, str, tuple[str, ...], str, tuple[str, ...]], ...]
    non_immutable: frozenset[str]
    function_sources: tuple[tuple[str, str], ...]  # name, definition


async def read_catalog(database: Database) -> Catalog:
    pool = database.pool
    tables = {
        r["relname"]: r["has_msisdn"]
        for r in await pool.fetch(
            "SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid "
            "  AND a.attname = 'msisdn' AND NOT a.attisdropped) AS has_msisdn "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    }
    unique = await pool.fetch(
        "SELECT t.relname AS tbl, ic.relname AS idx, i.indexprs IS NOT NULL AS expr, "
        "  array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k (attnum, o) "
        "        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "        ORDER BY k.o)::text[] AS cols "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE i.indisunique AND n.nspname = 'public' ORDER BY 1, 2"
    )
    fks = await pool.fetch(
        "SELECT c.conname, s.relname AS src, d.relname AS dst, "
        "  array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k (attnum, o) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "        ORDER BY k.o)::text[] AS cols, "
        "  array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k (attnum, o) "
        "        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum "
        "        ORDER BY k.o)::text[] AS refcols "
        "FROM pg_constraint c JOIN pg_class s ON s.oid = c.conrelid "
        "JOIN pg_class d ON d.oid = c.confrelid "
        "JOIN pg_namespace n ON n.oid = s.relnamespace "
        "WHERE c.contype = 'f' AND n.nspname = 'public' ORDER BY 1"
    )
    volatile = await pool.fetch("SELECT DISTINCT proname FROM pg_proc WHERE provolatile <> 'i'")
    functions = await pool.fetch(
        "SELECT p.proname, pg_get_functiondef(p.oid) AS def "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.prokind = 'f' ORDER BY 1"
    )
    return Catalog(
        tables=frozenset(tables),
        per_subscriber=frozenset(t for t, has in tables.items() if has),
        unique_keys=tuple((r["tbl"], r["idx"], tuple(r["cols"]), r["expr"]) for r in unique),
        foreign_keys=tuple(
            (r["conname"], r["src"], tuple(r["cols"]), r["dst"], tuple(r["refcols"])) for r in fks
        ),
        non_immutable=frozenset(r["proname"] for r in volatile) | frozenset(CLOCK_KEYWORDS),
        function_sources=tuple((r["proname"], r["def"]) for r in functions),
    )


# ---------------------------------------------------------------- the checks (pure)


def placement_findings(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """Tables that are neither per-subscriber nor a named reference table, and reference
    tables that hold a number."""
    named = REFERENCE_TABLES.keys() | DISTRIBUTED_OTHERWISE.keys()
    for table in sorted(catalog.tables):
        if table in named and table in catalog.per_subscriber:
            yield table, f"{table} has an msisdn column but is named as not per-subscriber"
        elif table not in named and table not in catalog.per_subscriber:
            yield table, f"{table}: no msisdn column and not named (reference or otherwise)"
    for table in sorted(named - catalog.tables):
        yield table, f"{table} is named but no longer exists: remove it"


def key_findings(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """Primary and unique keys that omit the table's distribution column (msisdn for a
    per-subscriber table)."""
    for table, index, cols, expr in catalog.unique_keys:
        if table in catalog.per_subscriber:
            column = "msisdn"
        elif table in DISTRIBUTED_OTHERWISE:
            column = DISTRIBUTED_OTHERWISE[table][0]
        else:
            continue
        if column not in cols or expr:
            yield table, f"{table}: unique index {index} {cols} omits {column}"


def foreign_key_findings(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """Foreign keys Citus refuses: from a reference table (or any table not distributed by
    msisdn) to a per-subscriber one, and between per-subscriber tables without pairing
    msisdn with msisdn."""
    per_subscriber = catalog.per_subscriber
    for name, src, cols, dst, refcols in catalog.foreign_keys:
        if dst not in per_subscriber:
            continue
        if src not in per_subscriber:
            kind = "reference table" if src in REFERENCE_TABLES else "table"
            yield src, f"{name}: {kind} {src} {cols} → per-subscriber {dst} {refcols}"
        elif ("msisdn", "msisdn") not in zip(cols, refcols, strict=True):
            yield src, f"{name}: {src} {cols} → {dst} {refcols} without msisdn"


_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.IGNORECASE)
_DO = re.compile(r"\bDO\b", re.IGNORECASE)
_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(\()?", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


def upsert_tails(sql: str) -> Iterator[str]:
    """The ``DO …`` part of each ``ON CONFLICT``, with its ``RETURNING``, up to the end of
    that INSERT (the paren closing its CTE, a semicolon, or the end of the text)."""
    sql = _COMMENT.sub("", sql)
    for match in _CONFLICT.finditer(sql):
        depth, end = 0, len(sql)
        for i in range(match.end(), len(sql)):
            ch = sql[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    end = i
                    break
            elif ch == ";" and depth == 0:
                end = i
                break
        tail = sql[match.end() : end]
        do = _DO.search(tail)
        yield tail[do.start() :] if do else tail


def non_immutable_calls(sql: str, non_immutable: frozenset[str]) -> list[str]:
    """Non-immutable functions (and clock keywords) an upsert's DO clause or RETURNING
    calls."""
    found = []
    for tail in upsert_tails(sql):
        for m in _CALL.finditer(tail):
            name = m.group(1).lower()
            if name in CLOCK_KEYWORDS or (m.group(2) and name in non_immutable):
                found.append(name)
    return found


def statements() -> Iterator[tuple[str, str]]:
    """Every named statement of the query files (templates once per table)."""
    for path in SQL_FILES:
        for name, block in parse_blocks(path.read_text(encoding="utf-8"), str(path)).items():
            bodies = block.per_table().items() if block.tables else [("", block.sql)]
            for table, sql in bodies:
                yield f"{path.relative_to(ROOT)}:{name}{'/' + table if table else ''}", sql


def upsert_findings(
    sources: Iterable[tuple[str, str]], non_immutable: frozenset[str]
) -> Iterator[tuple[str, str]]:
    for where, sql in sources:
        calls = non_immutable_calls(sql, non_immutable)
        if calls:
            yield where, f"{where}: upsert calls {', '.join(sorted(set(calls)))}"


_TAG = re.compile(
    r"(=|return)\s*await\s+[\w.\[\]]+\.(execute|copy_records_to_table|copy_to_table|"
    r"copy_from_table|copy_from_query)\("
)


def command_tag_findings() -> Iterator[tuple[str, str]]:
    """Python that keeps what ``execute``/``copy_*`` return: a command tag (``DELETE 3``),
    whose count Citus does not promise (a row count comes from RETURNING or, for COPY, the
    records handed over). Where is ``file:line``."""
    for directory in PYTHON_DIRS:
        for path in sorted(directory.rglob("*.py")):
            name = str(path.relative_to(ROOT))
            lines = path.read_text(encoding="utf-8").splitlines()
            for no, line in enumerate(lines, 1):
                if _TAG.search(line):
                    where = f"{name}:{no}"
                    yield where, f"{where}: command tag read: {line.strip()}"


def _report(findings: list[tuple[str, str]]) -> str:
    return "\n".join(message for _, message in findings)


# ---------------------------------------------------------------- the tests


async def test_every_table_is_per_subscriber_or_reference(database: Database) -> None:
    """Each table is distributed by msisdn (it has the column), or named: a reference table
    or one distributed by another column."""
    failures = list(placement_findings(await read_catalog(database)))
    assert not failures, _report(failures)


async def test_per_subscriber_keys_include_msisdn(database: Database) -> None:
    """Every primary and unique key of a per-subscriber table contains msisdn."""
    failures = list(key_findings(await read_catalog(database)))
    assert not failures, _report(failures)


async def test_foreign_keys_are_colocated(database: Database) -> None:
    """No foreign key from a reference table to a per-subscriber one; between per-subscriber
    tables every foreign key pairs msisdn with msisdn."""
    failures = list(foreign_key_findings(await read_catalog(database)))
    assert not failures, _report(failures)


async def test_upserts_call_only_immutable_functions(database: Database) -> None:
    """No ON CONFLICT … DO UPDATE or RETURNING, in a query file or a function of the
    migrations, calls now(), clock_timestamp(), random() or any non-immutable function: the
    clock is a parameter."""
    catalog = await read_catalog(database)
    sources = [*statements(), *(("function " + n, d) for n, d in catalog.function_sources)]
    assert sum(1 for _, sql in sources if _CONFLICT.search(sql)) > 10, "no upserts found"
    failures = list(upsert_findings(sources, catalog.non_immutable))
    assert not failures, _report(failures)


def test_row_counts_come_from_returning() -> None:
    """No Python reads a row count from a command tag (``UPDATE 5``)."""
    failures = list(command_tag_findings())
    assert not failures, _report(failures)


UPSERTS = [
    ("INSERT INTO t (k) VALUES ($1) ON CONFLICT (k) DO UPDATE SET at = now()", ["now"]),
    ("INSERT INTO t (k) VALUES ($1) ON CONFLICT (k) DO UPDATE SET at = $2", []),
    (
        "WITH x AS (INSERT INTO t (k) VALUES (1) ON CONFLICT DO NOTHING RETURNING "
        "clock_timestamp()) SELECT now() FROM x",
        ["clock_timestamp"],
    ),
    ("INSERT INTO t (k, at) VALUES ($1, now()) ON CONFLICT (k) DO NOTHING RETURNING k", []),
    (
        "INSERT INTO t (k) VALUES (1) ON CONFLICT (k) DO UPDATE SET r = random() -- now()",
        ["random"],
    ),
    (
        "INSERT INTO t (k) VALUES (1) ON CONFLICT (k) DO UPDATE SET at = CURRENT_TIMESTAMP",
        ["current_timestamp"],
    ),
    (
        "INSERT INTO t (k) VALUES (1) ON CONFLICT (k) DO UPDATE SET n = coalesce(t.n, 0) + 1 "
        "RETURNING count_parts(k), delivery_state_final(s)",
        [],
    ),
    ("UPDATE t SET at = now()", []),
]


@pytest.mark.parametrize(("sql", "calls"), UPSERTS)
async def test_upsert_scan(database: Database, sql: str, calls: list[str]) -> None:
    """The upsert scan finds a non-immutable call in DO UPDATE or RETURNING, and only there."""
    catalog = await read_catalog(database)
    assert non_immutable_calls(sql, catalog.non_immutable) == calls
