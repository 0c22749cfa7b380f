"""A private PostgreSQL cluster in a temporary directory on a free port, which a test or a
chaos run may stop and start at will (the machine's server on 5432 is never touched).

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user
and every pg_ctl call runs through ``runuser -u postgres --``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    found = candidates[-1] if candidates else shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """initdb + pg_ctl on a free port; `restart()` stops it (immediate: like a crash) and
    starts it again on the same data."""

    def __init__(self, database: str = "atelier") -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries (initdb) in /usr/lib/postgresql/*/bin")
        self.bin = bin_dir
        self.port = _free_port()
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o755)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = [str(self.bin / command[0]), *command[1:]]
        if self._as_postgres:
            full = ["runuser", "-u", "postgres", "--", *full]
        return subprocess.run(full, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
            conf = self.data / "postgresql.conf"
            with conf.open("a") as handle:
                # Small and quick: fsync stays on (a crash must not lose commits).
                handle.write(
                    f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.root}'\nmax_connections = 100\n"
                    "shared_buffers = 32MB\n"
                )
            self._pg_ctl_start()
            self._run(
                "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database
            )
            return
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop("immediate")
        time.sleep(down_for)
        self._pg_ctl_start()

    def close(self) -> None:
        self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)
