"""A PostgreSQL cluster of a test's own (initdb into a temp dir, a free port), for tests
that restart PostgreSQL: the machine's server on 5432 is shared and never restarted.

initdb refuses root, so the cluster belongs to the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port


@dataclass
class PrivatePostgres:
    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def pg_ctl(self, action: str, *extra: str) -> None:
        self._as_postgres(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1",
            *extra,
            action,
        )


def serve_private_postgres() -> Iterator[PrivatePostgres]:
    """Body of the ``private_postgres`` fixture that test modules declare."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None:
        if os.environ.get("CI"):
            pytest.fail("initdb and runuser are required on CI for the PostgreSQL restart test")
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    bin_dir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="atelier-pg-"))
    shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(bin_dir, root / "data", free_port())
    cluster._as_postgres(
        str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-A", "trust", "-U", "postgres"
    )
    cluster.pg_ctl("start")
    try:
        yield cluster
    finally:
        try:
            cluster.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)
