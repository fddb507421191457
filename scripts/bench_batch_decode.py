"""The row form of `/predict/batch`: JSON decoders on one body of 10,000 full rows, in one process (medians of
`--repeats`; compare the ratios, the absolute figures follow the box's load).

    .venv/bin/python scripts/bench_batch_decode.py

Parse-only candidates (json, orjson, pydantic_core, msgspec untyped) against what the service does: msgspec's typed,
validating decode into rows + the numeric matrix (`inputs.fast_batch`), and pydantic's validation (`BatchRequest`,
the path that words a 422).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import msgspec
import numpy as np
import orjson
import pydantic_core

from hvbuyer_assets.core.feature_spec import BY_NAME
from hvbuyer_serving import inputs
from hvbuyer_serving.schemas import BatchRequest


def full_rows(n: int) -> bytes:
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(n):
        row = {name: float(rng.integers(0, 100)) for name in BY_NAME if name != "region"}
        rows.append(row | {"age": 35.0, "region": "East", "share_large": 0.5, "refund_rate": 0.1})
    return json.dumps({"rows": rows}).encode()


def median_ms(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    body = full_rows(args.rows)
    assert inputs.fast_batch(body, args.rows) is not None
    candidates = {
        "json.loads (parse only)": lambda: json.loads(body),
        "orjson.loads (parse only)": lambda: orjson.loads(body),
        "pydantic_core.from_json (parse only)": lambda: pydantic_core.from_json(body, allow_inf_nan=False),
        "msgspec.json.decode untyped (parse only)": lambda: msgspec.json.decode(body),
        "pydantic BatchRequest (validated rows)": lambda: BatchRequest.model_validate_json(body),
        "msgspec typed, validated -> matrix (served)": lambda: inputs.fast_batch(body, args.rows),
    }
    results = {name: median_ms(call, args.repeats) for name, call in candidates.items()}
    served = results["msgspec typed, validated -> matrix (served)"]
    print(f"== {args.rows:,} full rows, {len(body) / 1e6:.1f} MB body, median of {args.repeats}")
    for name, ms in results.items():
        print(f"{name:<46}{ms:8.1f} ms  {ms / served:5.2f}x the served path")


if __name__ == "__main__":
    main()
