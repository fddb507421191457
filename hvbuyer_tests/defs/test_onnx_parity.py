"""The blocking ``onnx_parity`` check: what it passes and fails, and that it guards promotion."""

from __future__ import annotations

import json

import dagster as dg
import onnx

from hvbuyer_assets import registry
from hvbuyer_assets.core import features, model
from hvbuyer_assets.definitions import defs
from hvbuyer_assets.defs.model import checks
from hvbuyer_tests.pipeline import Workspace

ONNX_PARITY_TOLERANCE = 1e-4  # documented: max |ONNX - sklearn| on the hold-out


def test_parity_check_passes_within_tolerance_and_fails_beyond_or_on_error() -> None:
    assert model.ONNX_PARITY_TOLERANCE == ONNX_PARITY_TOLERANCE  # what the asset and the API enforce
    ok = checks.onnx_parity(3e-7, ONNX_PARITY_TOLERANCE, 100)
    assert ok.passed and "<=" in ok.description
    far = checks.onnx_parity(2e-3, ONNX_PARITY_TOLERANCE, 100)
    assert not far.passed and "2.00e-03 > 1e-04" in far.description
    broken = checks.onnx_parity(None, ONNX_PARITY_TOLERANCE, 100, error="RuntimeError: no converter")
    assert not broken.passed and "no converter" in broken.description


def test_parity_check_is_blocking_and_upstream_of_promotion() -> None:
    assert checks.ONNX_PARITY.blocking
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("registered_model") in graph.get(dg.AssetKey("champion_model")).parent_keys
    assert dg.AssetCheckKey(dg.AssetKey("registered_model"), "onnx_parity") in graph.asset_check_keys


def test_registration_logs_a_verified_onnx_graph(built: Workspace) -> None:
    registered = json.loads((built.root / "models" / "registered_model.json").read_text())
    version = built.client().get_model_version(registry.MODEL_NAME, registered["version"])
    assert version.tags[registry.ONNX_VERIFIED_TAG] == "true"
    assert float(version.tags[registry.ONNX_DIFF_TAG]) <= ONNX_PARITY_TOLERANCE
    uri = version.tags[registry.ONNX_URI_TAG]
    assert uri == f"runs:/{version.run_id}/{registry.ONNX_ARTIFACT_PATH}"
    graph = onnx.load_from_string(registry.download_artifact(built.settings.mlflow_tracking_uri, uri))
    assert [i.name for i in graph.graph.input] == list(features.FEATURE_COLUMNS)
    assert "probabilities" in [o.name for o in graph.graph.output]
