"""Schema migrations: ordered ``NNNN_name.sql`` files, each applied once in a transaction.

All of it runs under a session advisory lock, so replicas starting together are safe: the
second waits, then finds everything applied. A file changed after it was applied is an
error (its checksum no longer matches), not silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from dispatcher.kernel.sql import SqlFile

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_KEY = 0x5D15_0001  # advisory lock key reserved for migrations
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

log = structlog.get_logger(__name__)


class MigrationSQL(SqlFile, domain="migrations"):
    lock: str
    unlock: str
    create_table: str
    applied: str
    record: str


class MigrationError(RuntimeError):
    """The database's recorded migrations disagree with the files shipped."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a malformed name or a repeated version fails."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} appears twice")
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    migrations = discover(directory)
    await conn.execute(MigrationSQL.lock, LOCK_KEY)
    try:
        await conn.execute(MigrationSQL.create_table)
        applied = {r["version"]: r for r in await conn.fetch(MigrationSQL.applied)}
        done: list[str] = []
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded["checksum"] != migration.checksum:
                    raise MigrationError(f"{migration.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    MigrationSQL.record, migration.version, migration.name, migration.checksum
                )
            log.info("migration applied", migration=migration.name)
            done.append(migration.name)
        unknown = sorted(set(applied) - {m.version for m in migrations})
        if unknown:
            log.warning("database has migrations this build does not know", versions=unknown)
        return done
    finally:
        await conn.execute(MigrationSQL.unlock, LOCK_KEY)
