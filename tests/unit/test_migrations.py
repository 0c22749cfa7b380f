"""The migrations form one line: a second head would stop `atelier serve` at start."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from atelier.db.database import MIGRATIONS


def test_the_migrations_have_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several heads {heads}: set down_revision of the newest to the head"
