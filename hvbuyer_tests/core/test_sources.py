"""The raw sources declaration (``core.sources``): complete, consistent, and what ``core.drops`` derives from."""

from __future__ import annotations

import fnmatch
import inspect
from pathlib import Path

import pyarrow as pa
import pytest

from hvbuyer_assets import datagen
from hvbuyer_assets.core import contract, drops
from hvbuyer_assets.core.cleaning import QUARANTINE_COLUMNS
from hvbuyer_assets.core.cleaning.history import NoEarlierDrops
from hvbuyer_assets.core.sources import BY_KIND, SOURCES, RawSource

LINEAGE = ["source_file", "source_row"]


def _example(pattern: str, drop: str = "") -> str:
    """A file name the pattern matches, for the drop ``drop`` ("" = the unnamed drop)."""
    return pattern.replace("*", f"_{drop}" if drop else "")


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.kind)
def test_every_source_is_fully_declared(source: RawSource) -> None:
    assert source.kind and source.record and source.form
    assert source.patterns and all(p.startswith(source.kind) for p in source.patterns)
    assert source.key in source.columns and len(set(source.columns)) == len(source.columns)
    assert callable(source.reader) and callable(source.clean)
    assert source.raw_description and source.contract_description and source.clean_description
    assert list(inspect.signature(source.clean).parameters)[1 + len(source.needs) :] == ["earlier"]
    for check in source.checks:
        assert set(check.needs) <= set(source.needs) and check.what
        assert len(inspect.signature(check.bad_rows).parameters) == 1 + len(check.needs)


def test_kinds_names_and_patterns_are_unique_and_needs_come_first() -> None:
    assert list(BY_KIND) == [s.kind for s in SOURCES]
    names = [n for s in SOURCES for n in (s.raw_asset, s.clean_asset, s.quarantine_asset)]
    checks = [
        n for s in SOURCES for n in (s.contract_check, s.unique_check, s.share_check, *(c.name for c in s.checks))
    ]
    assert len(set(names)) == len(names) and len(set(checks)) == len(checks)
    for position, source in enumerate(SOURCES):
        assert all(kind in [s.kind for s in SOURCES[:position]] for kind in source.needs)
    for source in SOURCES:  # a file name belongs to exactly one kind
        for pattern in source.patterns:
            owners = [s.kind for s in SOURCES for p in s.patterns if fnmatch.fnmatchcase(_example(pattern, "q3"), p)]
            assert owners == [source.kind]


def test_drops_derive_their_kinds_from_the_declaration() -> None:
    assert set(drops.ALL_PATTERNS) == {p for s in SOURCES for p in s.patterns} | set(drops.MARKER_PATTERNS)
    for source in SOURCES:
        for pattern in source.patterns:
            assert drops.file_kind(_example(pattern, "q3")) == source.kind
            assert drops.drop_name(_example(pattern, "q3")) == "q3"
            assert drops.drop_name(_example(pattern)) == ""
    assert set(drops.split_by_kind([])) == set(BY_KIND)
    # a drop waits for a file of every kind that is absent, named by its form
    only_first = {_example(SOURCES[0].patterns[0], "q3"): "1-1"}
    waiting = drops.group_drops(only_first, only_first, {})[0].waiting_for
    assert all(f"{s.kind}_q3.{s.form}" in waiting for s in SOURCES[1:])


@pytest.fixture(scope="module")
def drop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    datagen.write_drop(out, 300, seed=5, days=60)
    return out


def test_each_source_reads_and_cleans_its_files(drop_dir: Path) -> None:
    """Declared reader -> raw frame -> declared cleaner (with the clean frames it needs), for every source."""
    clean = {}
    for source in SOURCES:
        files = sorted(p for p in drop_dir.iterdir() if any(fnmatch.fnmatchcase(p.name, x) for x in source.patterns))
        assert len(files) == 1, source.kind
        table = pa.concat_tables(source.reader(files[0], files[0].name, chunk_bytes=1 << 20))
        assert table.column_names == [*source.columns, *LINEAGE]
        needed = (clean[kind] for kind in source.needs)
        result = source.clean(contract.raw_to_frame(table), *needed, earlier=NoEarlierDrops())
        assert result.clean[source.key].is_unique and result.clean[source.key].notna().all()
        assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
        assert result.stats["rows_read"] == table.num_rows
        assert result.stats["rows_clean"] == len(result.clean) > 0
        frames = {kind: clean[kind] for kind in source.needs}
        for check in source.checks:  # the generator's mess is all caught by cleaning
            assert not check.bad_rows(result.clean, *(frames[kind] for kind in check.needs)).any(), check.name
        clean[source.kind] = result.clean


def test_a_declared_reader_names_the_file_when_it_breaks_the_contract(tmp_path: Path) -> None:
    for source in SOURCES:
        broken = tmp_path / _example(source.patterns[0], "broken")
        broken.write_bytes(b"")
        with pytest.raises(contract.ContractViolation, match=broken.name):
            list(source.reader(broken, broken.name, chunk_bytes=1 << 20))
