"""What a user sees after ``make run``, in a real headless browser (Debian's chromium through Playwright) that may
reach nothing but loopback: the API docs and `GET /model`'s promotion record, the Dagster asset graph and the drift
page's table, the MLflow registered model, its alias and the experiment's runs table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator

from hvbuyer_assets import registry
from hvbuyer_assets.core import drift_report
from hvbuyer_assets.definitions import defs
from hvbuyer_tests.ui.browser import chromium, dismiss_dagster_welcome, offline_page
from hvbuyer_tests.ui.conftest import MakeRun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TRUNCATED = "\u2026"  # Dagster shortens long asset names in a zoomed-out graph: quarant…_customers


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as instance:
        yield instance


def shown_as(name: str, labels: list[str]) -> bool:
    """An asset name is on the graph in full or shortened around an ellipsis."""
    for label in labels:
        if label == name:
            return True
        if TRUNCATED in label:
            head, tail = label.split(TRUNCATED, 1)
            if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
                return True
    return False


def test_api_docs_render_every_operation_without_leaving_loopback(make_run: MakeRun, browser: Browser) -> None:
    api = make_run.urls["api"].removesuffix("/docs")
    spec = httpx.get(f"{api}/openapi.json", timeout=10).json()
    with offline_page(browser) as view:
        view.page.goto(f"{api}/docs", wait_until="load")
        assert view.blocked == [], f"/docs asked for resources off this machine: {view.blocked}"
        view.page.locator(".opblock").first.wait_for(timeout=60_000)
        rendered = set(view.page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)"))
        assert rendered == set(spec["paths"]), "every path of the OpenAPI document is rendered"
        assert view.blocked == []


def test_dagster_asset_graph_shows_every_asset(make_run: MakeRun, browser: Browser) -> None:
    assets = sorted(key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys())
    with offline_page(browser, 1600, 1000) as view:
        page = view.page
        page.goto(f"{make_run.urls['dagster']}/asset-groups", wait_until="domcontentloaded")
        page.get_by_text("monitoring", exact=True).last.wait_for(timeout=120_000)  # a group box of the graph
        dismiss_dagster_welcome(page)
        page.keyboard.press("Alt+KeyE")  # the graph's "Expand all groups"
        names = page.locator("[class*='AssetNode_assetName']")
        page.wait_for_function(
            f"() => document.querySelectorAll(\"[class*='AssetNode_assetName']\").length >= {len(assets)}"
        )
        labels = names.all_inner_texts()
        assert [name for name in assets if not shown_as(name, labels)] == [], labels
        assert view.blocked == [], f"the Dagster UI asked for resources off this machine: {view.blocked}"


def test_mlflow_model_page_shows_the_champion_alias(make_run: MakeRun, browser: Browser) -> None:
    with offline_page(browser) as view:
        page = view.page
        page.goto(f"{make_run.urls['mlflow']}/#/models/hvbuyer", wait_until="domcontentloaded")
        alias = page.get_by_text(re.compile(r"^@\s*champion$"))
        alias.first.wait_for(timeout=120_000)
        row = page.get_by_role("row").filter(has=alias.first)
        assert "Version 1" in row.inner_text()
        assert view.blocked == [], f"the MLflow UI asked for resources off this machine: {view.blocked}"


def test_mlflow_experiment_link_opens_its_training_runs(make_run: MakeRun, browser: Browser) -> None:
    """The experiment page ``make run`` prints is the runs table with the build's training run, not a GenAI
    dashboard; the experiment carries MLflow's model-training kind tag."""
    link = re.search(r"its training runs: (\S+)", make_run.output())
    assert link is not None, make_run.output()[-3000:]
    client = registry.client(f"sqlite:///{make_run.data_dir}/mlflow.db")  # run.sh's default registry
    experiment = client.get_experiment_by_name(registry.EXPERIMENT_NAME)
    assert experiment.tags[registry.EXPERIMENT_KIND_TAG] == registry.EXPERIMENT_KIND
    runs = client.search_runs([experiment.experiment_id])
    assert runs, "the build logged a training run"
    with offline_page(browser, 1600, 1000) as view:
        page = view.page
        page.goto(link.group(1), wait_until="domcontentloaded")
        for run in runs:
            page.get_by_role("link", name=run.info.run_name).first.wait_for(timeout=120_000)
        assert view.blocked == [], f"the MLflow UI asked for resources off this machine: {view.blocked}"


def test_drift_page_shows_p_values_as_computed_and_what_flagged_each_feature(
    make_run: MakeRun, browser: Browser
) -> None:
    """The drift page (the Dagster UI's `drift_report` asset page) shows each feature's KS p-value as computed,
    below 1e-4 in scientific notation (`2.66e-17`, `1.25e-05`), never rounded to 0, and which rule flagged it,
    as stored in `monitoring/drift_report.json`; its plot is inline, an image the API serves."""
    report = json.loads((make_run.data_dir / "monitoring" / "drift_report.json").read_text())
    stored = {f["feature"]: f for f in [*report["features"], *report["time_indexed_features"]]}
    stored["score"] = report["prediction"]
    with offline_page(browser, 1600, 1000) as view:
        page = view.page
        page.goto(f"{make_run.urls['dagster']}/assets/drift_report", wait_until="domcontentloaded")
        dismiss_dagster_welcome(page)
        header = page.get_by_role("columnheader", name="flagged_by", exact=True)
        table = page.locator("table").filter(has=header).last  # the features table, inside the metadata table
        table.wait_for(timeout=120_000)
        headers = table.locator("thead th").all_inner_texts()
        rows = [dict(zip(headers, cells, strict=True)) for cells in _cells(table)]
        # The drift plot is shown inline (not behind [Show Markdown]), loaded from the API's /plots/.
        plot = page.locator(f"img[src^='{make_run.urls['api'].removesuffix('/docs')}/plots/']")
        plot.first.wait_for(timeout=60_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.first.element_handle())
        assert page.get_by_text("[Show Markdown]").count() == 0
        assert view.blocked == [], f"the Dagster UI asked for resources off this machine: {view.blocked}"
    assert {row["feature"] for row in rows} == set(stored)
    tiny = 0
    for row in rows:
        computed = stored[row["feature"]]
        assert row["flagged_by"] == computed["flagged_by"], row
        if computed.get("ks_pvalue") is None:
            continue
        if computed["ks_pvalue"] == 0:  # underflowed: shown as a bound, never as 0
            assert row["ks_pvalue"] == drift_report.UNDERFLOW_TEXT, row
            tiny += 1
            continue
        shown = float(row["ks_pvalue"])
        assert shown == pytest.approx(computed["ks_pvalue"], rel=5e-3), row
        if computed["ks_pvalue"] < 1e-4:
            assert re.fullmatch(r"\d(\.\d+)?e-\d+", row["ks_pvalue"]), row
            tiny += 1
    assert tiny, "the sample's time-indexed features have KS p-values far below 1e-4"
    assert any(row["flagged_by"] for row in rows), "and some are flagged"


def _cells(table: Locator) -> list[list[str]]:
    return table.locator("tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText))")


def test_model_page_shows_the_promotion_record(make_run: MakeRun, browser: Browser) -> None:
    """`GET /model` in the browser (docs/api.md) shows the champion's hold-out ROC-AUC at registration and the
    same-hold-out comparison that promoted it, against which version: what the registry's version tags say."""
    api = make_run.urls["api"].removesuffix("/docs")
    client = registry.client(f"sqlite:///{make_run.data_dir}/mlflow.db")
    champion = registry.champion(client)
    assert champion is not None
    with offline_page(browser) as view:
        view.page.goto(f"{api}/model", wait_until="load")
        shown = json.loads(view.page.locator("pre").first.inner_text())
        assert view.blocked == []
    assert shown["version"] == str(champion.version) == "1"
    promotion = shown["promotion"]
    assert promotion == registry.promotion_record(dict(champion.tags))
    assert promotion["roc_auc_at_registration"] == pytest.approx(shown["metrics"]["roc_auc"], abs=1e-6)
    # the first champion: compared with no version, its own figure on its hold-out, and why it was promoted
    assert set(promotion) >= {"compared_with", "candidate_roc_auc_same_holdout", "previous_roc_auc_same_holdout"}
    assert promotion["compared_with"] is None and promotion["previous_roc_auc_same_holdout"] is None
    assert promotion["candidate_roc_auc_same_holdout"] == promotion["roc_auc_at_registration"]
    assert promotion["decision"].startswith("promoted: ")
