"""The drops and the embedded engine's graph that both Spark tests compare with, built once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvbuyer_tests.conftest import shared_once


@pytest.fixture(scope="session")
def embedded_graph(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``graph.clean_two_drops`` (``base``: the drops cleaned, nothing else) and ``graph.GRAPH`` run on a copy of it
    by the embedded engine (``embedded``). Read-only: a Spark run works on its own copy of ``base``."""
    from hvbuyer_tests.engines import graph

    def build(folder: Path) -> None:
        base = graph.clean_two_drops(folder / "base")
        graph.run_graph(base, folder / "embedded", {"HVBUYER_ENGINE": "embedded"})

    folder = shared_once(request, tmp_path_factory, "engine-graph", build)
    return {"base": folder / "base", "embedded": folder / "embedded"}
