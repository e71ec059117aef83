"""The SQL loader: named blocks and per-table templates, checked when the class is defined."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.kernel.sql import PerTable, SqlFile, SqlLoadError

QUERIES = """
-- name: count_all
SELECT count(*) FROM deliveries

-- name: requeue
-- for: deliveries, service_messages
-- $1: ids.
UPDATE {table} SET state = 'queued' WHERE id = ANY($1::bigint[])
"""


def _file(tmp_path: Path, text: str = QUERIES) -> Path:
    (tmp_path / "demo.sql").write_text(text, encoding="utf-8")
    return tmp_path


def test_template_is_one_statement_per_table(tmp_path: Path) -> None:
    """A '-- for:' block becomes a read-only table → statement mapping; plain blocks stay str."""

    class DemoSQL(SqlFile, domain="demo", directory=_file(tmp_path)):
        count_all: str
        requeue: PerTable

    assert DemoSQL.count_all == "SELECT count(*) FROM deliveries"
    assert set(DemoSQL.requeue) == {"deliveries", "service_messages"}
    assert DemoSQL.requeue["service_messages"].endswith(
        "UPDATE service_messages SET state = 'queued' WHERE id = ANY($1::bigint[])"
    )
    assert "{table}" not in DemoSQL.requeue["deliveries"]
    with pytest.raises(TypeError):
        DemoSQL.requeue["other"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"missing": "str"}, "no query named missing"),
        ({"requeue": "str"}, "requeue: a '-- for:' template, declare it PerTable"),
        ({"count_all": "PerTable"}, "count_all: no '-- for:' line, declare it str"),
    ],
)
def test_declarations_are_checked_at_definition(
    tmp_path: Path, annotations: dict[str, str], message: str
) -> None:
    """An unknown name, or a template declared as a plain query (or the reverse), fails when
    the class is defined, not when the query first runs."""
    directory = _file(tmp_path)
    with pytest.raises(SqlLoadError, match=message):
        type(
            "DemoSQL",
            (SqlFile,),
            {"__annotations__": annotations},
            domain="demo",
            directory=directory,
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: a\n-- for: deliveries\nSELECT 1", "never uses {table}"),
        ("-- name: a\nSELECT * FROM {table}", "without '-- for:'"),
        ("-- name: a\n-- for: deliveries, deliveries\nSELECT * FROM {table}", "a table twice"),
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "defined twice"),
    ],
)
def test_malformed_templates_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """A template that never names its table, {table} outside a template, a table listed
    twice and a repeated name are load errors."""
    directory = _file(tmp_path, text)
    with pytest.raises(SqlLoadError, match=message):
        type(
            "DemoSQL",
            (SqlFile,),
            {"__annotations__": {"a": "str"}},
            domain="demo",
            directory=directory,
        )
