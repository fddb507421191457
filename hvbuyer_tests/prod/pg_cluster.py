"""A throwaway PostgreSQL cluster for the prod tests: the installed server's ``initdb`` + ``pg_ctl`` on a free
loopback port, trust authentication, its data in a temporary folder removed afterwards.

The test deployment keeps its Dagster instance and MLflow store on it, so a test can restart PostgreSQL without
touching the machine's shared server (port 5432). As root, the server runs as the ``postgres`` user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def server_bin() -> Path | None:
    """The bin folder of the newest installed PostgreSQL server (``initdb`` and ``pg_ctl``), or None."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PgCluster:
    """One cluster: ``start()`` (initdb on first use), ``restart()``, ``destroy()``; ``url(db)`` for SQLAlchemy."""

    def __init__(self, port: int) -> None:
        bindir = server_bin()
        if bindir is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin")
        self.bin = bindir
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="hvbuyer-pg-"))  # not under pytest's 0700 folders
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self._user is not None:
            argv = ["runuser", "-u", self._user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {result.stderr or result.stdout}\n{log}")

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>``: ``fast`` terminates every connection and shuts down cleanly, ``immediate``
        quits at once (as a crash would: the next start recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop (fast: every connection is terminated) and start again on the same port and data."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, FileNotFoundError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
