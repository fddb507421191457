"""The structure rules of the code base, checked on its import graph (grimp) and its source:

- no import cycle anywhere in ``hvbuyer_assets`` / ``hvbuyer_serving`` (function-level imports included);
- the pure core, the storage package and the prediction service never reach Dagster;
- no source file over 500 lines;
- the environment is read in one module only, ``hvbuyer_assets/settings.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hvbuyer_assets", "hvbuyer_serving")
SOURCE_DIRS = ("hvbuyer_assets", "hvbuyer_serving", "scripts")
MAX_LINES = 500
ENVIRONMENT_READER = REPO / "hvbuyer_assets" / "settings.py"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


def _sources() -> list[Path]:
    return sorted(path for folder in SOURCE_DIRS for path in (REPO / folder).rglob("*.py"))


def _internal(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def test_the_import_graph_has_no_cycle(graph: grimp.ImportGraph) -> None:
    cycles: dict[frozenset[str], str] = {}
    for importer in sorted(m for m in graph.modules if _internal(m)):
        for imported in graph.find_modules_directly_imported_by(importer):
            if _internal(imported) and graph.chain_exists(importer=imported, imported=importer):
                back = graph.find_shortest_chain(importer=imported, imported=importer) or ()
                cycles.setdefault(frozenset(back), " -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles.values()))


@pytest.mark.parametrize("package", ["hvbuyer_assets.core", "hvbuyer_assets.storage", "hvbuyer_serving"])
def test_pure_packages_never_reach_dagster(graph: grimp.ImportGraph, package: str) -> None:
    dagster_packages = sorted(m for m in graph.modules if m.split(".")[0].startswith("dagster"))
    assert dagster_packages, "the graph should know the dagster packages the shell imports"
    reached = {
        target: graph.find_shortest_chains(importer=package, imported=target, as_packages=True)
        for target in dagster_packages
    }
    assert not {target: chains for target, chains in reached.items() if chains}


def test_no_source_file_is_over_500_lines() -> None:
    lengths = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in _sources()}
    assert lengths, "no source files found"
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def _environment_reads(path: Path) -> list[str]:
    """``os.environ`` / ``os.getenv`` / ``os.putenv`` uses and ``from os import environ|getenv`` in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = [a.name for a in node.names if a.name in ("environ", "environb", "getenv", "getenvb")]
            found.extend(f"{path.relative_to(REPO)}:{node.lineno} from os import {name}" for name in names)
    return found


def test_only_the_settings_module_reads_the_environment() -> None:
    assert _environment_reads(ENVIRONMENT_READER), "the settings module is where the environment is read"
    elsewhere = [read for path in _sources() if path != ENVIRONMENT_READER for read in _environment_reads(path)]
    assert elsewhere == []
