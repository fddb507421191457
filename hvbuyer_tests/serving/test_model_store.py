"""The champion store in-process on a real registry: a version pointing outside the artifact store is refused; an
unreachable registry degrades readiness with the reason."""

from __future__ import annotations

import socket

import pytest
from mlflow.exceptions import MlflowException

from hvbuyer_assets import registry
from hvbuyer_serving.model_store import ChampionStore
from hvbuyer_tests.pipeline import Workspace


def test_model_files_outside_the_artifact_store_are_never_loaded(workspace_copy: Workspace, tmp_path) -> None:
    client = workspace_copy.client()
    store = ChampionStore(workspace_copy.settings.mlflow_tracking_uri)
    assert store.refresh() and store.current.version == "1"
    v1 = client.get_model_version(registry.MODEL_NAME, "1")
    outside = tmp_path / "elsewhere" / "model"
    outside.mkdir(parents=True)
    new = registry.register(client, outside.as_uri(), v1.run_id, dict(v1.tags))
    registry.promote(client, new)
    assert store.refresh() is False
    assert store.current.version == "1" and store.rejected_version == new
    assert "outside the registry's artifact store" in store.last_error
    assert store.refresh() is False and store.load_failures == 1  # polling does not retry a rejected version


def test_unreachable_registry_is_not_no_champion_and_readiness_says_why(
    workspace_copy: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry that refuses connections raises (never reads as "no champion yet"); the store keeps its loaded
    version and its readiness is ``degraded`` with the reason until the registry answers again."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    store = ChampionStore(workspace_copy.settings.mlflow_tracking_uri)
    assert store.refresh() and store.readiness() == ("ready", None)
    reachable = store.client
    with socket.socket() as sock:  # a loopback port nothing listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    store.client = registry.client(closed)
    with pytest.raises(MlflowException, match="failed with exception"):
        registry.champion(store.client)
    with pytest.raises(MlflowException):
        store.refresh()
    status, reason = store.readiness()
    assert status == "degraded" and store.current.version == "1"
    assert "cannot follow the registry alias 'champion'" in reason and "serving the loaded version 1" in reason
    assert "ConnectionError" in reason or "Connection refused" in reason, reason
    store.client = reachable
    assert store.refresh() is False and store.readiness() == ("ready", None)
