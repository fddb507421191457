"""Session fixtures: one generated drop and one full materialization shared by the read-only tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvbuyer_tests.pipeline import Workspace, write_sample


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace whose whole graph has been materialized once on the sample drop. Treat as read-only:
    tests that change data or the registry work on ``built.copy_to(tmp_path / ...)``."""
    workspace = Workspace(tmp_path_factory.mktemp("built") / "data")
    write_sample(workspace.raw)
    result = workspace.materialize()
    assert result.success, "the sample drop must build end to end"
    return workspace


@pytest.fixture
def workspace_copy(built: Workspace, tmp_path: Path) -> Workspace:
    """A private copy of the built workspace."""
    return built.copy_to(tmp_path / "data")
