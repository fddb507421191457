"""What a user sees in the Dagster and MLflow UIs: descriptions everywhere, column schemas and row counts on the
stored frames, the score distribution and checks on the scores, the drift table as a Dagster table whose
non-voting rows are marked, comparison plots, a link to the model's MLflow run; one MLflow run per registered
version, named after the Dagster job and run, carrying the problem definition, the plots and the promotion."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import drift, drift_report
from hvbuyer_assets.core.columns import COLUMN_DESCRIPTIONS
from hvbuyer_assets.core.sources import BY_KIND
from hvbuyer_assets.definitions import build_definitions
from hvbuyer_assets.defs.metadata import INLINE_MARKDOWN_CHARS, rounded
from hvbuyer_assets.defs.model.resources import run_name
from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage.plots import plot_name
from hvbuyer_tests.pipeline import Workspace, check_results

PROBLEM_PARAMS = ("horizon_days", "large_purchase_threshold", "training_cutoff", "holdout_cutoff", "data_as_of")
# A build again on a copy of the session's build: same data, so the version is reused and the champion kept.
REBUILT = [
    "clean_customers",
    "quarantined_customers",
    "model_evaluation",
    "registered_model",
    "champion_model",
    "customer_scores",
    "segment_summary",
    "drift_report",
]


def test_every_asset_and_check_has_its_own_description() -> None:
    graph = build_definitions(load_settings({})).resolve_asset_graph()
    assets = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}": graph.get(key).description for key in graph.asset_check_keys
    }
    for name, description in {**assets, **checks}.items():
        assert description and description.strip(), f"{name} has no description"
        assert "``" not in description, f"{name}: raw double backticks in {description!r}"
    for kind in ("customers", "transactions"):
        assert assets[f"quarantined_{kind}"] != assets[f"clean_{kind}"]
        assert "set aside" in assets[f"quarantined_{kind}"]
    assert "does not vote" in assets["drift_report"] or "do not vote" in assets["drift_report"]


def test_mlflow_runs_are_named_after_the_dagster_job_and_run() -> None:
    run_id = "1a2b3c4d-0000-4000-8000-000000000000"
    assert run_name("full_build", run_id) == "full_build-1a2b3c4d"
    assert run_name("__ASSET_JOB", run_id) == "assets-1a2b3c4d"
    assert run_name("__ephemeral_asset_job__", run_id) == "assets-1a2b3c4d"


def _runs(workspace: Workspace) -> list:
    client = workspace.client()
    experiment = client.get_experiment_by_name(registry.EXPERIMENT_NAME)
    return client.search_runs([experiment.experiment_id])


def test_one_mlflow_run_per_build_named_after_the_job_with_problem_plots_and_promotion(built: Workspace) -> None:
    runs = _runs(built)
    assert len(runs) == 1, [r.info.run_name for r in runs]  # no empty run beside the model's
    run = runs[0]
    assert re.fullmatch(r"assets-[0-9a-f]{8}", run.info.run_name), run.info.run_name
    assert not run.info.run_name.startswith("__")
    assert run.info.status == "FINISHED"
    version = built.client().get_model_version(registry.MODEL_NAME, "1")
    assert version.run_id == run.info.run_id  # the registered model's own run
    assert run.data.params["horizon_days"] == "90" and run.data.params["large_purchase_threshold"] == "300"
    assert set(PROBLEM_PARAMS) <= set(run.data.params)
    assert run.data.params["holdout_cutoff"] == version.tags[registry.HOLDOUT_CUTOFF_TAG]
    assert run.data.params["training_cutoff"] < run.data.params["holdout_cutoff"] < run.data.params["data_as_of"]
    assert run.data.tags["hvbuyer.promotion.decision"] == "promoted"
    assert run.data.tags["hvbuyer.champion_version"] == "1"
    assert run.data.tags["dagster_run_id"].split("-")[0] == run.info.run_name.removeprefix("assets-")
    assert run.data.tags["dagster_job"] == "__ephemeral_asset_job__"  # materialize(): Dagster's own job
    artifacts = {a.path for a in built.client().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/calibration.png", "evaluation/lift.png"} <= artifacts


@pytest.fixture(scope="module")
def rebuilt(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dg.ExecuteInProcessResult]:
    workspace = built.copy_to(tmp_path_factory.mktemp("metadata") / "data")
    result = workspace.materialize(selection=REBUILT)
    assert result.success
    return workspace, result


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
    ]
    assert len(events) == 1, asset
    return dict(events[0].metadata)


PLOT = re.compile(r"!\[[^\[\]\n]+\]\((?P<api>\S+)/plots/(?P<name>[0-9a-f]{32}\.png)\)")


def _image(workspace: Workspace, value: dg.MetadataValue) -> bool:
    """A plot the Dagster UI shows inline (below its markdown collapse length): a markdown image of the API's
    `/plots/` URL of a PNG stored under the data dir's `plots/`."""
    assert isinstance(value, dg.MarkdownMetadataValue)
    assert len(value.md_str) < INLINE_MARKDOWN_CHARS, value.md_str[:200]
    link = PLOT.fullmatch(value.md_str)
    assert link is not None, value.md_str[:200]
    assert link["api"] == workspace.settings.api_url.rstrip("/")
    png = (workspace.root / "plots" / link["name"]).read_bytes()
    return png.startswith(b"\x89PNG\r\n\x1a\n") and plot_name(png) == link["name"]


def test_stored_frames_carry_row_count_and_described_column_schema(
    rebuilt: tuple[Workspace, dg.ExecuteInProcessResult],
) -> None:
    workspace, result = rebuilt
    for asset in ("clean_customers", "quarantined_customers", "customer_scores", "segment_summary"):
        meta = _metadata(result, asset)
        assert meta["dagster/row_count"].value > 0, asset
        schema = meta["dagster/column_schema"].schema
        assert schema.columns, asset
        for column in schema.columns:
            assert column.description == COLUMN_DESCRIPTIONS[column.name], (asset, column.name)
    # The quarantine share is a float on the clean asset (its Plots tab charts it): the share check's figure.
    clean = _metadata(result, "clean_customers")
    share = clean["quarantine_share"]
    assert isinstance(share, dg.FloatMetadataValue)
    assert share.value == clean["rows_dropped"].value / clean["rows_read"].value
    assert 0 < share.value < 0.05  # the sample's mess sets a few rows aside, below the warning share
    assert share.value == check_results(result)[BY_KIND["customers"].share_check].metadata["share"].value
    scores = _metadata(result, "customer_scores")
    assert scores["dagster/row_count"].value == 3000
    assert [c.name for c in scores["dagster/column_schema"].schema.columns] == [
        "customer_id",
        "large_purchase_probability",
        "model_version",
        "scored_at",
        "features_as_of",
    ]
    assert _image(workspace, scores["score_histogram"])
    mean = scores["mean_probability"].value
    assert mean == round(mean, 4) and 0 < mean < 1


def test_customer_scores_checks_are_non_blocking_and_pass(rebuilt: tuple[Workspace, dg.ExecuteInProcessResult]) -> None:
    workspace, result = rebuilt
    evaluations = check_results(result)
    for name in ("scores_are_probabilities", "one_score_per_customer"):
        assert evaluations[name].passed, evaluations[name].description
    graph = build_definitions(workspace.settings).resolve_asset_graph()
    specs = {
        key.name: graph.get(key) for key in graph.asset_check_keys if key.asset_key == dg.AssetKey("customer_scores")
    }
    assert set(specs) == {"scores_are_probabilities", "one_score_per_customer"}
    assert not any(spec.blocking for spec in specs.values())


def test_drift_table_is_table_metadata_with_non_voting_rows_marked(
    rebuilt: tuple[Workspace, dg.ExecuteInProcessResult],
) -> None:
    workspace, result = rebuilt
    meta = _metadata(result, "drift_report")
    report = json.loads((workspace.root / "monitoring" / "drift_report.json").read_text())
    table = meta["features_table"]
    assert isinstance(table, dg.TableMetadataValue)
    columns = {c.name: c for c in table.schema.columns}
    assert list(columns) == list(drift_report.DISPLAY_COLUMNS)
    assert all(c.description for c in columns.values())
    rows = [r.data for r in table.records]
    voting = [r for r in rows if r["role"] == drift_report.VOTING]
    others = [r for r in rows if r["role"] != drift_report.VOTING]
    assert voting and others
    assert {r["role"] for r in others} == {drift_report.NOT_VOTING, drift_report.SCORE_ROLE}
    assert {r["role"] for r in voting} == {drift_report.VOTING}
    assert not any(r["counted"] for r in others)
    assert all(r["psi"] is None or r["psi"] == rounded(r["psi"]) for r in rows)
    # p-values as computed (3 significant digits, scientific below 1e-4), never rounded to 0; one code per row.
    stored = {f["feature"]: f for f in [*report["features"], *report["time_indexed_features"]]}
    assert columns["ks_pvalue"].type == "string"
    for row in rows:
        computed = stored.get(row["feature"], {}).get("ks_pvalue")
        if computed == 0:
            assert row["ks_pvalue"] == drift_report.UNDERFLOW_TEXT, row
        elif computed is not None:
            assert float(row["ks_pvalue"]) == pytest.approx(computed, rel=5e-3), row
            assert ("e-" in row["ks_pvalue"]) == (computed < 1e-4), row
    judged = [r for r in rows if r["flagged_by"] != drift.NOT_JUDGED]
    assert all(set(r["flagged_by"].split("+")) <= {"", "PSI", "KS", "JS"} for r in judged)
    assert all(bool(r["flagged_by"]) == r["drifted"] for r in judged)
    assert set(meta["reasons"].value) == {r["feature"] for r in rows}
    verdict = meta["verdict"].value
    headline = meta["headline"].value
    drifted = sum(r["drifted"] for r in voting)
    assert headline.startswith(f"{verdict}: {drifted} of {len(voting)} voting features drifted")
    assert _image(workspace, meta["drift_plot"]) and f"![{headline}]" in meta["drift_plot"].md_str  # the plot's title


def test_evaluation_compares_candidate_and_baselines_and_links_the_run(
    rebuilt: tuple[Workspace, dg.ExecuteInProcessResult],
) -> None:
    workspace, result = rebuilt
    evaluation = _metadata(result, "model_evaluation")
    comparison = evaluation["comparison"]
    assert isinstance(comparison, dg.TableMetadataValue)
    assert [r.data["model"] for r in comparison.records] == [
        "random forest (candidate)",
        "logistic regression baseline",
        "demographics-only baseline",
    ]
    assert all(_image(workspace, evaluation[key]) for key in ("roc_curve", "calibration_plot", "lift_plot"))
    assert evaluation["roc_auc"].value == round(evaluation["roc_auc"].value, 4)

    registered = _metadata(result, "registered_model")
    run_id = workspace.client().get_model_version(registry.MODEL_NAME, "1").run_id
    link = registered["mlflow_run_id"]
    assert isinstance(link, dg.UrlMetadataValue)
    assert link.url.startswith(workspace.settings.mlflow_ui_url) and f"/runs/{run_id}?" in link.url


def test_a_rebuild_that_reuses_the_version_opens_no_run_and_tags_the_models_run(
    rebuilt: tuple[Workspace, dg.ExecuteInProcessResult],
) -> None:
    workspace, result = rebuilt
    assert result.output_for_node("registered_model")["reused"] is True
    runs = _runs(workspace)
    assert len(runs) == 1  # still only the model's run
    assert runs[0].data.tags["hvbuyer.promotion.decision"] == "kept"
    assert runs[0].data.tags["hvbuyer.promotion.dagster_run_id"] == result.run_id
