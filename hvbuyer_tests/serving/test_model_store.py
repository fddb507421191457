"""The champion store in-process on a real registry: a version pointing outside the artifact store is refused."""

from __future__ import annotations

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
