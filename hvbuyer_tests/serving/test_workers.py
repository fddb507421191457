"""``HVBUYER_API_WORKERS=2`` (``python -m hvbuyer_serving``: uvicorn's worker processes on one port): each worker
follows the champion alias by itself, so a promotion reaches every worker, with no failed request during the swap
and every answer computed by the version it names."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core.model import ONNX_PARITY_TOLERANCE
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.serving.load import SEED, LoadLoop
from hvbuyer_tests.serving.models import probability, register_different_model
from hvbuyer_tests.serving.service import free_port, launch, wait_until


def _versions_by_worker(base_url: str, answers: int = 40) -> dict[int, set[str | None]]:
    """``GET /model`` on fresh connections: the version each answering worker serves."""
    seen: dict[int, set[str | None]] = {}
    with httpx.Client(base_url=base_url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(answers):
            card = client.get("/model").json()
            seen.setdefault(card["worker_pid"], set()).add(card["version"])
    return seen


def test_a_promotion_reaches_every_worker_without_a_failed_request(workspace_copy: Workspace, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "hvbuyer_serving"]
    env = {"HVBUYER_API_PORT": str(port), "HVBUYER_API_WORKERS": "2", "HVBUYER_POLL_SECONDS": "0.3"}
    with launch(
        workspace_copy.root, tmp_path / "api.log", wait_for="/health/ready", command=command, port=port, **env
    ) as api:
        base = str(api.client.base_url)
        wait_until(lambda: len(_versions_by_worker(base)) == 2, "both workers to answer")
        wait_until(lambda: all(v == {"1"} for v in _versions_by_worker(base).values()), "both workers on version 1")
        new = register_different_model(workspace_copy)
        expected = {version: probability(workspace_copy, version, SEED) for version in ("1", new)}
        with LoadLoop(base, threads=4, fresh=True) as load:
            wait_until(lambda: load.total() > 50, "the load loop to run")
            registry.promote(workspace_copy.client(), new)
            wait_until(
                lambda: (
                    (seen := _versions_by_worker(base)).keys()
                    and all(v == {new} for v in seen.values())
                    and len(seen) == 2
                ),
                "every worker serving the new champion",
            )
            after = load.total()
            wait_until(lambda: load.total() > after + 50, "more requests after the swap")
        assert load.errors == []
        assert {status for status, _, _ in load.outcomes} == {200}, load.outcomes  # no failed request
        assert load.served("1") > 0 and load.served(new) > 0
        for _, version, answer in load.outcomes:
            assert answer == pytest.approx(expected[version], abs=ONNX_PARITY_TOLERANCE), (version, answer)
        log = api.log()
    # each worker loaded version 1 and swapped to the new one itself (its own poll: nobody told it)
    assert log.count("loaded champion version 1 (onnx)") == 2, log[-3000:]
    assert log.count(f"swapped champion version 1 -> {new} (onnx)") == 2, log[-3000:]
