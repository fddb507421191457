"""Memory follows the chunk, not the file: a drop's transactions read, staged by row group, read back and cleaned
a chunk at a time (what the raw and clean steps do) peak at about the same memory for a file twice as large, and
far below reading the same file as one chunk. Measured in a fresh interpreter per run: the peak of Arrow's memory
pool plus the peak of Python/numpy allocations (tracemalloc); no clock involved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvbuyer_assets import datagen

pytestmark = pytest.mark.slow  # four fresh interpreters, each reading and cleaning a file

_MEASURE = """
import json, sys, tracemalloc
import pandas as pd, pyarrow as pa
from hvbuyer_assets.core import contract
from hvbuyer_assets.core.cleaning.chunks import clean_chunks, final_chunks
from hvbuyer_assets.core.cleaning.history import NoEarlierDrops
from hvbuyer_assets.core.sources import TRANSACTIONS
from hvbuyer_assets.storage.staged import StagedParquet

path, folder, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrived = pd.Timestamp("2026-07-01", tz="UTC").value
customers = pd.DataFrame({"customer_id": pd.Series([f"C{i:07d}" for i in range(1, 200_001)], dtype="string[pyarrow]")})
pool = pa.default_memory_pool()
tracemalloc.start()
raw = StagedParquet(f"{folder}/raw.parquet.tmp")
for table in TRANSACTIONS.reader(path, "transactions.json", chunk_bytes=chunk):
    n = table.num_rows
    raw.write(table.append_column("arrived_at", pa.array([arrived] * n, pa.timestamp("ns", tz="UTC"))))
chunks = (contract.raw_to_frame(raw.read(i), source_files=["transactions.json"]) for i in range(raw.row_groups))
stage, out = StagedParquet(f"{folder}/stage.parquet.tmp"), StagedParquet(f"{folder}/out.parquet.tmp")
lineage = StagedParquet(f"{folder}/lineage.parquet.tmp")
clean = lambda c: TRANSACTIONS.clean(c, customers, earlier=NoEarlierDrops())  # noqa: E731
result = clean_chunks(chunks, clean, "transaction_id", stage, lineage=lineage)
for table in final_chunks(stage, result.removed):
    out.write(table)
out.close()
peak = pool.max_memory() + tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "rows": out.rows, "chunks": result.chunks}))
"""


def _peak(path: Path, chunk_bytes: int, folder: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(folder), str(chunk_bytes)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Transactions of 8,000 and of 16,000 customers (about 2x the rows)."""
    root = tmp_path_factory.mktemp("files")
    small = datagen.write_drop(root / "small", 8_000, seed=1, as_of="2026-06-30")[1]
    large = datagen.write_drop(root / "large", 16_000, seed=1, as_of="2026-06-30")[1]
    return small, large


def test_peak_memory_grows_with_the_chunk_not_the_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    small, large = files
    assert large.stat().st_size > 1.8 * small.stat().st_size
    chunk = 1 << 20
    chunked_small, chunked_large = _peak(small, chunk, tmp_path), _peak(large, chunk, tmp_path)
    # one chunk: the whole file at once
    whole_small, whole_large = (_peak(path, path.stat().st_size + 1, tmp_path) for path in (small, large))
    assert chunked_large["rows"] == whole_large["rows"] > 1.8 * chunked_small["rows"]
    assert chunked_large["chunks"] > 10 and whole_large["chunks"] == 1
    figures = {
        "chunked": (chunked_small["peak"], chunked_large["peak"]),
        "whole": (whole_small["peak"], whole_large["peak"]),
    }
    # read whole, the peak follows the file; in chunks, it barely moves when the file doubles
    assert whole_large["peak"] > 1.5 * whole_small["peak"], figures
    assert chunked_large["peak"] < 1.3 * chunked_small["peak"], figures
    assert chunked_large["peak"] < whole_large["peak"] / 2, figures
