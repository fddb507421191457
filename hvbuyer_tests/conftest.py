"""Session fixtures (one generated drop and one full materialization shared by the read-only tests), an isolated
environment for every test, and the ``slow`` marker on every test that needs a materialized graph."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from filelock import FileLock

from hvbuyer_tests.deadline import Deadline

if TYPE_CHECKING:  # imported where a graph is built: Dagster and MLflow take seconds to import
    from hvbuyer_tests.pipeline import Workspace

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


STARTED = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """When the test's set-up began: pytest-timeout's clock starts here too (it counts fixture time)."""
    item.stash[STARTED] = time.monotonic()
    yield


def _timeout(item: pytest.Item) -> float:
    """pytest-timeout's limit for ``item``: its ``timeout`` marker, else ``--timeout``, else the ini value."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"])
    return float(item.config.getoption("timeout", None) or item.config.getini("timeout") or 0)


@pytest.fixture
def deadline(request: pytest.FixtureRequest) -> Deadline:
    """When this test's waits must end: its pytest-timeout limit, counted from its set-up (the session's
    ``built`` included when this test was the first to need it), less the time a failure report needs."""
    item = request.node
    return Deadline.after(item.stash.get(STARTED, time.monotonic()), _timeout(item))


FAST_TIMEOUT_SECONDS = 120  # a test not marked slow that takes this long is hung (pyproject's timeout: slow ones)


# Tests of a package-scoped fixture (``make_run``: `make run` on the sample) run on one worker, as one unit.
SHARED_PACKAGES = ("hvbuyer_tests/ui/",)


def _order(item: pytest.Item) -> int:
    """Longest first on several workers: the slow tests that build their own graph or stack, then those sharing
    the built workspace, then the fast ones (no long test left alone at the end)."""
    if item.get_closest_marker("slow") is None:
        return 2
    return 1 if "built" in getattr(item, "fixturenames", ()) else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs the session's materialized graph (``built``, directly or through another fixture such
    as ``workspace_copy`` or ``api``) is slow: ``pytest -m "not slow"`` skips the build. Other tests get the
    short timeout. On pytest-xdist workers (``make test``) the longest tests come first."""
    for item in items:
        if "built" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_SECONDS))
    if hasattr(config, "workerinput"):
        items.sort(key=_order)  # stable: every worker collects the same order


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` (``make test``): each module's tests go to one worker as a unit, so its module-scoped
    fixtures are set up once, and so do those of each package in SHARED_PACKAGES; with ``--no-loadscope-reorder``
    the units are handed out in collection order (longest first, see ``_order``). Not ``--dist loadgroup`` with
    ``xdist_group`` marks: pytest-xdist 3.8 no longer sees them on pytest 9.2 (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return next((package for package in SHARED_PACKAGES if module.startswith(package)), module)

    return SharedFixtureScheduling(config, log)


def _build(root: Path) -> Workspace:
    from hvbuyer_tests.pipeline import Workspace, write_sample

    workspace = Workspace(root)
    write_sample(workspace.raw)
    result = workspace.materialize()
    assert result.success, "the sample drop must build end to end"
    return workspace


def shared_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """A folder ``build`` fills once per test run: with pytest-xdist the first worker that needs it builds it in the
    run's shared temporary directory and the others wait for it and read it (treat it as read-only)."""
    if not hasattr(request.config, "workerinput"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this run
    done = shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(shared / name, ignore_errors=True)  # what a worker whose build failed left
            build(shared / name)
            done.touch()
    return shared / name


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace whose whole graph has been materialized once on the sample drop. Treat as read-only:
    tests that change data or the registry work on ``built.copy_to(tmp_path / ...)``. Built once per run
    (``shared_once``: the forest already uses every core, one build at a time is faster than one per worker)."""
    from hvbuyer_tests.pipeline import Workspace

    return Workspace(shared_once(request, tmp_path_factory, "built", lambda folder: _build(folder / "data")) / "data")


@pytest.fixture
def workspace_copy(built: Workspace, tmp_path: Path) -> Workspace:
    """A private copy of the built workspace."""
    return built.copy_to(tmp_path / "data")
