"""Session fixtures (one generated drop and one full materialization shared by the read-only tests), an isolated
environment for every test, and the ``slow`` marker on every test that needs a materialized graph."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvbuyer_tests.pipeline import Workspace, write_sample

# Variables that configure hvbuyer, MLflow and AWS clients: a developer's shell (or CI) setting one of them
# must not change what a test sees, and a test setting one must not leak into the next.
ISOLATED_PREFIXES = ("HVBUYER_", "MLFLOW_", "AWS_")


def _isolated_names() -> list[str]:
    return [name for name in os.environ if name.startswith(ISOLATED_PREFIXES)]


@pytest.fixture(scope="session", autouse=True)
def _session_environment() -> Iterator[None]:
    """The whole session (session fixtures such as ``built`` included) runs without the caller's
    HVBUYER_* / MLFLOW_* / AWS_* variables; they are put back at the end."""
    saved = {name: os.environ.pop(name) for name in _isolated_names()}
    try:
        yield
    finally:
        for name in _isolated_names():
            del os.environ[name]
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _test_environment() -> Iterator[None]:
    """Every test starts without HVBUYER_* / MLFLOW_* / AWS_* variables, and whatever it sets among them (directly,
    through monkeypatch or through the code it runs) is removed after it. Session fixtures are no exception:
    ``mlflow.set_tracking_uri`` also sets MLFLOW_TRACKING_URI, which a later test's subprocesses would inherit."""
    for name in _isolated_names():
        del os.environ[name]
    try:
        yield
    finally:
        for name in _isolated_names():
            del os.environ[name]


def clean_environment(**env: str) -> dict[str, str]:
    """The environment for a subprocess of a test: this process's, without HVBUYER_* / MLFLOW_* / AWS_* (code run
    in this process may have set some), plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}, **env}


FAST_TIMEOUT_SECONDS = 120  # a test not marked slow that takes this long is hung (pyproject's timeout: slow ones)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the session's materialized graph (``built``, directly or through another fixture such
    as ``workspace_copy`` or ``api``) is slow: ``pytest -m "not slow"`` skips the build. Other tests get the
    short timeout."""
    for item in items:
        if "built" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_SECONDS))


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
