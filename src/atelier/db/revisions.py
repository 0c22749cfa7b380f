"""Is the schema at the newest revision? Answered without importing Alembic.

Every start migrates, and a database already at the head (every start but the first
after an upgrade) needs nothing from Alembic, whose import costs about 10 MiB of
resident memory and a fifth of a second. The head is read from the revision files'
``revision`` and ``down_revision`` literals; a file that does not spell them so (or
that uses ``depends_on``) makes the answer "unknown", and Alembic decides as before.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from sqlalchemy import Connection, inspect, text

_NOT_A_LITERAL = object()


@functools.cache
def script_heads(versions: Path) -> frozenset[str] | None:
    """The revisions no other revision follows, or None when a file is not understood."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name.startswith("__"):
            continue
        try:
            found = _literals(path)
        except SyntaxError:
            return None  # Alembic will say what is wrong with it
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str) or found.get("depends_on") is not None:
            return None
        if isinstance(down, str):
            followed.add(down)
        elif isinstance(down, tuple) and all(isinstance(d, str) for d in down):
            followed.update(down)
        elif down is not None or "down_revision" not in found:
            return None
        revisions.add(revision)
    heads = frozenset(revisions - followed)
    return heads or None


def stored_heads(connection: Connection) -> frozenset[str]:
    """The revisions the database says it is at (none for a new database)."""
    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(row[0] for row in rows)


def at_head(connection: Connection, versions: Path) -> bool:
    heads = script_heads(versions)
    return heads is not None and stored_heads(connection) == heads


def _literals(path: Path) -> dict[str, object]:
    """The module-level ``name = <literal>`` assignments of a revision file."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    try:
                        found[target.id] = ast.literal_eval(node.value)
                    except (ValueError, TypeError, SyntaxError):
                        found[target.id] = _NOT_A_LITERAL
    return found
