"""One rule for every asset whose blocking checks are computed in its own body (raw contracts, cleaning
invariants, leakage, label prevalence, quality floor, ONNX parity): a blocking check that fails with severity
ERROR means the asset yields its check results but **no output**. Nothing stored is replaced (the file of the
last accepted run stays, byte for byte) and Dagster skips everything downstream. Such assets declare
``output_required=False`` (``AssetOut(is_required=False)`` for a multi-asset). A failed check of severity WARN
(e.g. a quarantine share between 5 % and 30 %) blocks nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import dagster as dg


def blocking_failures(
    results: Iterable[dg.AssetCheckResult], specs: Iterable[dg.AssetCheckSpec]
) -> list[dg.AssetCheckResult]:
    """The results of blocking checks (per ``specs``) that failed with severity ERROR."""
    blocking = {spec.name for spec in specs if spec.blocking}
    return [
        r for r in results if r.check_name in blocking and not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    ]


def gate(
    outputs: Iterable[dg.Output], results: Iterable[dg.AssetCheckResult], specs: Iterable[dg.AssetCheckSpec]
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """``outputs`` then ``results`` when no blocking check failed; only ``results`` otherwise."""
    checked = list(results)
    if not blocking_failures(checked, specs):
        yield from outputs
    yield from checked
