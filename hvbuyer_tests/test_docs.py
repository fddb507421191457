"""The documentation stays short, linked and complete: README length, links that resolve, no path outside the
repository, and every environment variable of the settings model documented in docs/configuration.md."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
SETTINGS_MODULES = ("hvbuyer_assets.settings", "hvbuyer_serving.settings")
MAKE_RUN_SCRIPTS = ("scripts/run.sh", "scripts/sample_data.sh")  # `make run`'s own variables
README_MAX_LINES = 250

# Spelled in pieces so that this file does not match the search it performs.
OUTSIDE_PATHS = ("../" + "shared", "/work/" + "shared", "CONTRACT" + ".md")
SCANNED_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".txt", ".env"}
SKIPPED_DIRS = {".git", ".venv", ".bench", ".dagster_home", "data", "node_modules", "__pycache__", "build", "dist"}

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
ENV_NAME = re.compile(r"\b(?:HVBUYER|MLFLOW|AWS|DAGSTER)_[A-Z0-9_]+\b")


def doc_files() -> list[Path]:
    return [README, REPO / "data" / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = unicodedata.normalize("NFKC", text).lower().replace("`", "")
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    links = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:...
                continue
            links.append(target)
    return links


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md: {len(lines)} lines, at most {README_MAX_LINES}: move detail to docs/"
    )


def test_the_reference_pages_exist_and_are_linked_from_the_readme() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    expected = {
        "data-contract.md",
        "drops-and-sensors.md",
        "prediction-problem-and-model.md",
        "drift-and-retraining.md",
        "api.md",
        "operations-and-benchmarks.md",
        "configuration.md",
        "architecture.md",
    }
    assert expected <= pages, f"missing docs pages: {sorted(expected - pages)}"
    linked = {Path(t.split("#")[0]).name for t in relative_links(README)}
    assert pages <= linked, f"docs pages not linked from README.md: {sorted(pages - linked)}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
            continue
        if not resolved.is_relative_to(REPO):
            broken.append(f"{target}: points outside the repository")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, f"{path.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


def _repository_files() -> list[Path]:
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in names:
            path = Path(root) / name
            if path.suffix in SCANNED_SUFFIXES or name in {"Makefile", "run", "Dockerfile"}:
                files.append(path)
    return files


def test_nothing_refers_to_a_path_outside_the_repository() -> None:
    offending = []
    for path in _repository_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if any(outside in line for outside in OUTSIDE_PATHS):
                offending.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offending, "references to files outside the repository (use docs/ pages):\n" + "\n".join(offending)


def _field_env_names(model: type, name: str, field: object) -> set[str]:
    """The environment variable(s) a pydantic-settings field is read from."""
    from pydantic import AliasChoices, AliasPath

    alias = getattr(field, "validation_alias", None) or getattr(field, "alias", None)
    if isinstance(alias, str):
        return {alias.upper()}
    if isinstance(alias, AliasChoices):
        return {c.upper() for c in alias.choices if isinstance(c, str)}
    if isinstance(alias, AliasPath):
        return {str(alias.path[0]).upper()}
    prefix = str(model.model_config.get("env_prefix", ""))  # type: ignore[attr-defined]
    return {f"{prefix}{name}".upper()}


def settings_env_names() -> set[str]:
    """Every variable the settings model reads: the fields of its pydantic-settings classes and every
    variable name the settings modules spell out."""
    names: set[str] = set()
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        names |= set(ENV_NAME.findall(inspect.getsource(module)))
        try:
            from pydantic_settings import BaseSettings
        except ImportError:  # not a pydantic-settings model: the names spelled out are all there is
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
                for name, field in obj.model_fields.items():
                    names |= _field_env_names(obj, name, field)
    return names


def test_every_settings_variable_is_documented() -> None:
    names = settings_env_names()
    assert "HVBUYER_DATA_DIR" in names, f"settings model not understood: found {sorted(names)}"
    documented = set(ENV_NAME.findall(CONFIGURATION.read_text(encoding="utf-8")))
    missing = sorted(names - documented)
    assert not missing, f"variables read by the settings model but not in docs/configuration.md: {missing}"


def test_every_make_run_variable_is_documented() -> None:
    names = set()
    for script in MAKE_RUN_SCRIPTS:
        names |= set(re.findall(r"\bHVBUYER_[A-Z0-9_]+\b", (REPO / script).read_text(encoding="utf-8")))
    assert "HVBUYER_SAMPLE_CUSTOMERS" in names, f"make run's scripts not understood: found {sorted(names)}"
    documented = set(ENV_NAME.findall(CONFIGURATION.read_text(encoding="utf-8")))
    missing = sorted(names - documented)
    assert not missing, f"variables read by make run's scripts but not in docs/configuration.md: {missing}"
