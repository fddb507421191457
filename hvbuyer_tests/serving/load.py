"""Client threads sending ``/predict`` back to back while a test swaps the champion; every outcome is recorded
with the version and the probability the response named."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

SEED = {"age": 35, "region": "East", "loyalty_points": 1200}


class LoadLoop:
    """``threads`` clients posting ``SEED``; ``fresh``: a new connection per request (so that, with several
    workers, requests reach every one of them); outcomes are ``(status, version, probability)``."""

    def __init__(self, base_url: str, threads: int = 4, fresh: bool = False) -> None:
        self.base_url, self.fresh = base_url, fresh
        self.outcomes: Counter[tuple[int, str | None, float | None]] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0) if self.fresh else httpx.Limits()
        with httpx.Client(base_url=self.base_url, timeout=10, limits=limits) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/predict", json=SEED)
                    body = response.json() if response.status_code == 200 else {}
                    outcome = (response.status_code, body.get("model_version"), body.get("large_purchase_probability"))
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.outcomes[outcome] += 1

    def total(self) -> int:
        return sum(self.outcomes.values())

    def served(self, version: str) -> int:
        """Successful answers naming ``version``."""
        return sum(n for (status, v, _), n in self.outcomes.items() if status == 200 and v == version)

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
