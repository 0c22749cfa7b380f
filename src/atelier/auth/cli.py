"""``atelier keys create|list|revoke``: straight on the database named by Settings (like
``atelier migrate``), so the first admin key can be made before the server runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(help="Make, list and revoke API keys (on the database directly).")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None, typer.Option(help="SQLAlchemy URL (default: env, then SQLite in the data dir).")
]
DataDir = Annotated[Path | None, typer.Option(help="Where the database and files live.")]


def _run(database_url: str | None, data_dir: Path | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from atelier.auth.audit import AuditLog
    from atelier.auth.keys import KeyService
    from atelier.db.database import Database
    from atelier.errors import AtelierError
    from atelier.settings import Settings

    settings = Settings.from_options(database_url=database_url, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        database = Database(settings.resolved_database_url)
        try:
            await database.migrate()
            return await work(KeyService(database, AuditLog(database)))
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except AtelierError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(code=1) from exc


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="The owner: keys with one name share jobs.")],
    scope: Annotated[list[str], typer.Option(help="admin, submit, read or metrics (repeatable).")],
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    max_queued: Annotated[int | None, typer.Option(help="Queued jobs at most.")] = None,
    max_running: Annotated[int | None, typer.Option(help="Running jobs at most.")] = None,
    max_artifact_bytes: Annotated[int | None, typer.Option(help="Stored bytes at most.")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Make a key; prints it once (the last line), and only a hash is kept."""
    from atelier.auth.caller import Limits

    limits = Limits(rate_limit, max_queued, max_running, max_artifact_bytes)
    row, key = _run(
        database_url,
        data_dir,
        lambda keys: keys.create(name, scope, limits, actor="cli"),
    )
    err.print(f"key {row.id} for {row.name!r} ({', '.join(row.scopes)}); it is shown only now:")
    print(key)


@keys_app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option(help="Show revoked keys too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List keys (never the keys themselves)."""
    from atelier.auth.keys import describe

    rows = _run(database_url, data_dir, lambda keys: keys.find(include_revoked=include_revoked))
    items = [describe(r) for r in rows]
    if as_json:
        print(json.dumps(items, default=str, indent=2))
        return
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "revoked")
    for item in items:
        table.add_row(
            str(item["id"]),
            str(item["name"]),
            str(item["prefix"]),
            ",".join(item["scopes"]),  # type: ignore[arg-type]
            str(item["created_at"])[:19],
            str(item["last_used_at"] or "")[:19],
            str(item["revoked_at"] or "")[:19],
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: str, database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Revoke a key: a running server refuses it within 5 seconds (keys.CACHE_SECONDS)."""
    row = _run(database_url, data_dir, lambda keys: keys.revoke(key_id, actor="cli"))
    console.print(f"revoked key {row.id} of {row.name!r}")
