"""Generating a drop: the frames (:func:`generate`) or the files, written atomically (:func:`write_drop`)."""

from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from hvbuyer_assets.core.contract import CUSTOMER_COLUMNS, TRANSACTION_COLUMNS
from hvbuyer_assets.datagen.people import Customers, simulate_customers
from hvbuyer_assets.datagen.rendering import customer_table, json_lines, render_transactions
from hvbuyer_assets.datagen.transactions import Events, simulate_transactions
from hvbuyer_assets.datagen.world import DEFAULT_AS_OF, DEFAULT_DAYS, TID_TAG, as_of_timestamp, check_args

ROW_CHUNK = 500_000  # transaction lines rendered per step
WORKERS = 2  # threads rendering JSON lines (output does not depend on it)

CUSTOMER_HEADER = ",".join(CUSTOMER_COLUMNS) + "\n"


def _string_bytes(values: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a string array (no copy)."""
    raw_offsets = values.buffers()[1]
    offsets = np.frombuffer(raw_offsets, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4)
    return memoryview(values.buffers()[2])[offsets[0] : offsets[-1]]


def _write_lines(fh: BinaryIO, events: Events, n_customers: int, prefix: str) -> None:
    """Render blocks of ROW_CHUNK lines on worker threads (pyarrow compute releases the GIL) and write them
    in order; at most WORKERS + 1 blocks are held in memory."""

    def render(first: int) -> pa.Array:
        rows = np.arange(first, min(first + ROW_CHUNK, events.rows.size))
        return json_lines(*render_transactions(events, rows, n_customers, prefix))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending: deque[Future[pa.Array]] = deque()
        for first in range(0, events.rows.size, ROW_CHUNK):
            pending.append(pool.submit(render, first))
            if len(pending) > WORKERS:
                fh.write(_string_bytes(pending.popleft().result()))
        while pending:
            fh.write(_string_bytes(pending.popleft().result()))


def _world(
    n_customers: int, seed: int, as_of: str | pd.Timestamp, days: int, drift: str
) -> tuple[Customers, Events, str]:
    check_args(n_customers, seed, days, drift)
    end = as_of_timestamp(as_of)
    if end - pd.Timedelta(days=days) < pd.Timestamp("1971-01-01", tz="UTC"):
        raise ValueError(f"the window ({days} days before {end:%Y-%m-%d}) must start after 1971")
    customers = simulate_customers(n_customers, seed, drift)
    events = simulate_transactions(customers, seed, end, days, drift)
    return customers, events, f"T{end:%Y%m%d}{TID_TAG[drift]}-"


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    string = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper={pa.string(): string, pa.large_string(): string}.get)


def generate(
    n_customers: int,
    *,
    seed: int = 0,
    as_of: str | pd.Timestamp = DEFAULT_AS_OF,
    days: int = DEFAULT_DAYS,
    drift: str = "none",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Messy (customers, transactions) frames exactly as :func:`write_drop` writes them.

    All columns are ``string[pyarrow]``; a JSON key that the file omits appears as ``<NA>`` here.
    Meant for tests and small N: :func:`write_drop` streams large outputs in chunks instead.
    """
    customers, events, prefix = _world(n_customers, seed, as_of, days, drift)
    chunks = [
        pa.table(
            render_transactions(events, np.arange(a, min(a + ROW_CHUNK, events.rows.size)), n_customers, prefix)[0]
        )
        for a in range(0, events.rows.size, ROW_CHUNK)
    ]
    schema = pa.schema([(name, pa.string()) for name in TRANSACTION_COLUMNS])
    transactions = pa.concat_tables(chunks) if chunks else schema.empty_table()
    return _to_pandas(customer_table(customers, seed, drift)), _to_pandas(transactions)


def drop_paths(out_dir: str | os.PathLike[str], drop: str | None = None) -> tuple[Path, Path]:
    """Target paths of one drop: customers[_NAME].csv and transactions[_NAME].json in ``out_dir``."""
    if drop is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", drop):
        raise ValueError(f"drop name must be letters, digits, '_', '-' or '.', got {drop!r}")
    suffix = f"_{drop}" if drop else ""
    out = Path(out_dir)
    return out / f"customers{suffix}.csv", out / f"transactions{suffix}.json"


def write_drop_counted(
    out_dir: str | os.PathLike[str],
    n_customers: int,
    *,
    seed: int,
    as_of: str | pd.Timestamp,
    days: int,
    drift: str,
    drop: str | None,
    force: bool,
) -> tuple[Path, Path, int, int]:
    customers_path, transactions_path = drop_paths(out_dir, drop)
    existing = [str(p) for p in (customers_path, transactions_path) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use --force / force=True)")
    customers, events, prefix = _world(n_customers, seed, as_of, days, drift)
    customers_path.parent.mkdir(parents=True, exist_ok=True)
    # Write to hidden temp files and rename: a sensor watching the folder never sees a half-written drop,
    # and customers land before the transactions that reference them.
    tmp_c = customers_path.with_name(f".{customers_path.name}.{os.getpid()}.tmp")
    tmp_t = transactions_path.with_name(f".{transactions_path.name}.{os.getpid()}.tmp")
    try:
        table = customer_table(customers, seed, drift)
        with open(tmp_c, "wb") as fh:
            fh.write(CUSTOMER_HEADER.encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        with open(tmp_t, "wb") as fh:
            _write_lines(fh, events, n_customers, prefix)
        os.replace(tmp_c, customers_path)
        os.replace(tmp_t, transactions_path)
    finally:
        for tmp in (tmp_c, tmp_t):
            tmp.unlink(missing_ok=True)
    return customers_path, transactions_path, table.num_rows, int(events.rows.size)


def write_drop(
    out_dir: str | os.PathLike[str],
    n_customers: int,
    *,
    seed: int = 0,
    as_of: str | pd.Timestamp = DEFAULT_AS_OF,
    days: int = DEFAULT_DAYS,
    drift: str = "none",
    drop: str | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write one drop (customers CSV + transactions JSON Lines) into ``out_dir``; returns both paths.

    Raises FileExistsError if a target exists and ``force`` is false (nothing is written then).
    """
    c_path, t_path, _, _ = write_drop_counted(
        out_dir, n_customers, seed=seed, as_of=as_of, days=days, drift=drift, drop=drop, force=force
    )
    return c_path, t_path
