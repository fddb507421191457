"""Screenshots of the running UIs for the docs (``make screenshots``, with ``make run`` up in another terminal).

Drives Debian's chromium (``make browser``) through Playwright, loopback only, and writes to docs/images/:
the API docs page, the Dagster asset graph, the drift_report and model_evaluation asset pages with their plots
and tables, and the MLflow registered model with its ``champion`` alias. The services are found on the ports
``make run`` uses (HVBUYER_DAGSTER_PORT / HVBUYER_API_PORT / HVBUYER_MLFLOW_PORT, defaults 3000 / 8080 / 5000) or
given as --dagster / --api / --mlflow URLs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the browser helper lives beside the browser tests

from playwright.sync_api import Browser, Page  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from hvbuyer_assets.settings import load_settings  # noqa: E402
from hvbuyer_tests.ui.browser import chromium, dismiss_dagster_welcome, offline_page  # noqa: E402

# Asset page -> (image name, metadata entries whose value opens in a dialog: a plot or a wide table).
ASSET_PAGES = {
    "drift_report": ("drift-report", ("drift_plot", "features_table")),
    "model_evaluation": ("model-evaluation", ("roc_curve", "calibration_plot", "lift_plot")),
}
WAIT_MS = 60_000


def _url(flag: str | None, port: int) -> str:
    return (flag or f"http://127.0.0.1:{port}").rstrip("/")


def _save(page_or_element: object, out: Path, name: str) -> None:
    path = out / f"{name}.png"
    page_or_element.screenshot(path=str(path))  # type: ignore[attr-defined]
    print(f"   {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def api_docs(browser: Browser, api: str, out: Path) -> None:
    with offline_page(browser) as view:
        view.page.goto(f"{api}/docs", wait_until="load")
        if view.blocked:
            print(f"!! /docs asked for resources off this machine (shown blank offline): {view.blocked}")
        view.page.locator(".opblock").first.wait_for(timeout=WAIT_MS)
        _save(view.page, out, "api-docs")


def dagster_asset_graph(browser: Browser, dagster: str, out: Path) -> None:
    with offline_page(browser, 1600, 1000) as view:
        page = view.page
        page.goto(f"{dagster}/asset-groups", wait_until="domcontentloaded")
        page.get_by_text("monitoring", exact=True).last.wait_for(timeout=WAIT_MS)
        dismiss_dagster_welcome(page)
        page.get_by_text("Hide navigation").click()  # the app's left menu: the graph gets the width
        page.keyboard.press("Alt+KeyE")  # "Expand all groups"
        page.get_by_text("customer_scores", exact=True).last.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(5000)  # the graph animates into place, materialization states arrive
        _save(page, out, "dagster-asset-graph")


def _metadata_row(page: Page, key: str) -> object:
    # The innermost row holding the key: a metadata table may sit in a layout that also has rows.
    return page.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).last


def dagster_asset_page(browser: Browser, dagster: str, asset: str, out: Path) -> None:
    name, dialogs = ASSET_PAGES[asset]
    with offline_page(browser, 1440, 1000) as view:
        page = view.page
        page.goto(f"{dagster}/assets/{asset}", wait_until="domcontentloaded")
        first = _metadata_row(page, dialogs[0])
        first.wait_for(timeout=WAIT_MS)  # type: ignore[attr-defined]
        dismiss_dagster_welcome(page)
        page.wait_for_timeout(1000)
        # The page from its Metadata section down (the section's layout changes with the metadata kinds).
        page.get_by_text("Metadata", exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        _save(page, out, name)
        for key in dialogs:
            row = _metadata_row(page, key)
            opener = row.get_by_text("[Show Markdown]")  # type: ignore[attr-defined]
            if opener.count() == 0:  # shown inline: the page shot has it
                continue
            opener.click()
            dialog = page.get_by_role("dialog")
            dialog.wait_for()
            page.wait_for_timeout(500)
            _save(dialog, out, f"{name}-{key.replace('_', '-')}")
            page.keyboard.press("Escape")
            dialog.wait_for(state="hidden")


def mlflow_model(browser: Browser, mlflow: str, out: Path) -> None:
    with offline_page(browser) as view:
        view.page.goto(f"{mlflow}/#/models/hvbuyer", wait_until="domcontentloaded")
        view.page.get_by_text("champion").last.wait_for(timeout=WAIT_MS)
        view.page.wait_for_timeout(1000)
        _save(view.page, out, "mlflow-model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dagster", help="Dagster UI URL (default http://127.0.0.1:$HVBUYER_DAGSTER_PORT or :3000)")
    parser.add_argument("--api", help="API URL (default http://127.0.0.1:$HVBUYER_API_PORT or :8080)")
    parser.add_argument("--mlflow", help="MLflow UI URL (default http://127.0.0.1:$HVBUYER_MLFLOW_PORT or :5000)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the PNG files")
    args = parser.parse_args()
    settings = load_settings()
    dagster = _url(args.dagster, settings.dagster_port)
    api = _url(args.api, settings.api_port)
    mlflow = _url(args.mlflow, settings.mlflow_port)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"== screenshots of {dagster}, {api}, {mlflow} into {args.out}")
    steps = [
        ("API docs", lambda browser: api_docs(browser, api, args.out)),
        ("Dagster asset graph", lambda browser: dagster_asset_graph(browser, dagster, args.out)),
        *[
            (f"Dagster {asset}", lambda browser, asset=asset: dagster_asset_page(browser, dagster, asset, args.out))
            for asset in ASSET_PAGES
        ],
        ("MLflow model", lambda browser: mlflow_model(browser, mlflow, args.out)),
    ]
    failed = []
    with chromium() as browser:
        for title, step in steps:
            try:
                step(browser)
            except PlaywrightTimeout as exc:
                failed.append(title)
                print(f"!! {title}: the page did not show what was expected: {str(exc).splitlines()[0]}")
    if failed:
        print(f"!! no screenshot of: {', '.join(failed)} (is `make run` up, with a finished build?)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
