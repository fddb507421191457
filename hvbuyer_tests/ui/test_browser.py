"""What a user sees after ``make run``, in a real headless browser (Debian's chromium through Playwright) that may
reach nothing but loopback: the API docs, the Dagster asset graph, the MLflow registered model and its alias."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from hvbuyer_assets import registry
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
