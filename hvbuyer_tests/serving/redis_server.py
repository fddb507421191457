"""A private ``redis-server`` on a free loopback port for a test that must stop, limit or break it (the machine's
Redis on 6379 serves Celery and the other tests: never stopped)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from hvbuyer_tests.serving.service import free_port

MACHINE_REDIS = "redis://127.0.0.1:6379"
TEST_DB = 3  # db 1 is Celery's result backend, 2 the production online store (deploy/local.env)


class PrivateRedis:
    """``start()`` / ``stop()`` a redis-server on one port, in ``folder``; with ``persist``, an append-only file
    (fsync on every write) there keeps the data across a stop and a start."""

    def __init__(self, folder: Path, persist: bool = False) -> None:
        self.port = free_port()
        self.folder, self.persist = folder, persist
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (apt-get install redis-server)"
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.folder)]
        cmd += ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@contextmanager
def private_redis(folder: Path, persist: bool = False) -> Iterator[PrivateRedis]:
    """A started :class:`PrivateRedis`, stopped on exit."""
    server = PrivateRedis(folder, persist)
    server.start()
    try:
        yield server
    finally:
        server.stop()
