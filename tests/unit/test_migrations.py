"""The migrations form one line: a second head would stop `atelier serve` at start. And
the head read from the revision files without Alembic (so a start at the head does not
load it) is Alembic's own."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from atelier.db.database import MIGRATIONS, Database, alembic_config
from atelier.db.revisions import at_head, script_heads, stored_heads


def test_the_migrations_have_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several heads {heads}: set down_revision of the newest to the head"


def test_the_head_read_without_alembic_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert script_heads(MIGRATIONS / "versions") == frozenset(heads)


def test_a_revision_file_not_spelled_in_literals_leaves_the_answer_to_alembic(
    tmp_path: Path,
) -> None:
    (tmp_path / "0001_a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "0002_b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    assert script_heads(tmp_path) == frozenset({"b"})
    computed = tmp_path / "computed"
    computed.mkdir()
    (computed / "0001_a.py").write_text('revision = "a"\ndown_revision = None\n')
    (computed / "0002_c.py").write_text('revision = "c"\ndown_revision = PREVIOUS\n')
    assert script_heads(computed) is None
    depends = tmp_path / "depends"
    depends.mkdir()
    (depends / "0001_a.py").write_text('revision = "a"\ndown_revision = None\ndepends_on = "x"\n')
    assert script_heads(depends) is None


async def test_a_database_at_the_head_is_left_alone_and_one_behind_is_upgraded(
    tmp_path: Path,
) -> None:
    versions = MIGRATIONS / "versions"
    [head] = script_heads(versions) or ()
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'atelier.db'}")
    try:
        async with database.engine.begin() as connection:
            assert await connection.run_sync(stored_heads) == frozenset()
            assert not await connection.run_sync(at_head, versions)
            previous = await connection.run_sync(_upgrade_to_one_before, head)
            assert await connection.run_sync(stored_heads) == frozenset({previous})
            assert not await connection.run_sync(at_head, versions)
        await database.migrate()
        async with database.engine.begin() as connection:
            assert await connection.run_sync(stored_heads) == frozenset({head})
            assert await connection.run_sync(at_head, versions)
    finally:
        await database.close()


def _upgrade_to_one_before(connection: Connection, head: str) -> str:
    """Alembic brings a new database to the revision before the head; returns it."""
    config = alembic_config(connection)
    down = ScriptDirectory.from_config(config).get_revision(head).down_revision
    assert isinstance(down, str)
    command.upgrade(config, down)
    return down
