"""Synthetic, deliberately messy raw data for hvbuyer: ``customers.csv`` + ``transactions.json`` (JSON Lines).

The command line of the generator (``python -m hvbuyer_assets.datagen --help``; see the package docstring).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import pandas as pd

from hvbuyer_assets.datagen.world import DEFAULT_AS_OF, DEFAULT_DAYS, DRIFTS, as_of_timestamp
from hvbuyer_assets.datagen.writing import write_drop_counted


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m hvbuyer_assets.datagen", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--customers", type=int, required=True, help="number of customers N")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", choices=DRIFTS, default="none")
    parser.add_argument("--as-of", default=DEFAULT_AS_OF, help="window end date YYYY-MM-DD (UTC midnight)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="window length in days")
    parser.add_argument("--drop", default=None, help="write customers_NAME.csv / transactions_NAME.json")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if as_of_timestamp(args.as_of) > pd.Timestamp.now(tz="UTC"):
            print(
                f"datagen: warning: --as-of {args.as_of} is in the future; the pipeline will set aside "
                "transactions stamped after the files arrive",
                file=sys.stderr,
            )
        c_path, t_path, n_c, n_t = write_drop_counted(
            args.out,
            args.customers,
            seed=args.seed,
            as_of=args.as_of,
            days=args.days,
            drift=args.drift,
            drop=args.drop,
            force=args.force,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"datagen: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"datagen: wrote {n_c:,} customer rows to {c_path} and {n_t:,} transaction rows to {t_path} "
        f"(seed={args.seed}, as_of={args.as_of}, days={args.days}, drift={args.drift}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0
