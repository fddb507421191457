"""The raw sources, declared once: which files are of which kind, how they are read and cleaned, and the names
of what the pipeline makes of them.

Everything else derives from ``SOURCES``: the file kinds and the completion rule of ``core.drops``, the raw
drop sensor's run config, and the raw/clean assets with their checks (``defs/raw``). Adding a source (say
``products_*.csv``) is one ``RawSource`` entry here plus its cleaning rules in ``core/cleaning/`` (and its
downstream use).

Names derived from a source of kind K (record R): assets ``raw_K`` (group raw), ``clean_K`` and
``quarantined_K`` (group processed); checks ``K_contract`` on ``raw_K``, ``R_ids_unique`` and
``R_quarantine_share`` on ``clean_K``, plus the source's own ``checks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import contract, rules
from hvbuyer_assets.core.cleaning import CleanResult, clean_customers, clean_transactions
from hvbuyer_assets.core.cleaning import customers as customer_rules
from hvbuyer_assets.core.cleaning import transactions as transaction_rules
from hvbuyer_assets.core.cleaning.dedup import StringSet
from hvbuyer_assets.core.cleaning.history import EarlierDrops, PrefetchedDrops
from hvbuyer_assets.core.text import arrow, clean_text, column


@dataclass(frozen=True)
class ValueCheck:
    """A blocking check of a source's clean frame: ``bad_rows(clean, *clean frames of needs)`` marks the rows
    that break a rule (``what`` names them in the result); it passes when there are none. ``needs`` is a subset
    of the source's ``needs``."""

    name: str
    what: str
    bad_rows: Callable[..., np.ndarray | pd.Series]
    description: str | None = None
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawSource:
    """One kind of raw file.

    patterns: file name globs in the raw location (each starts with ``kind``; the rest names the drop).
    form: how messages name such a file ("csv" in "customers_q3.csv").
    columns: the contract columns ``reader`` requires (its tables hold them + ``source_file``, ``source_row``).
    reader: ``(source, file name, *, chunk_bytes) -> all-string Arrow tables``, about that much text each, rows
        numbered across them; raises ``contract.ContractViolation`` (possibly after some chunks).
    clean: ``(raw frame, *clean frames of needs (same drop), earlier: EarlierDrops) -> CleanResult``, applied to
        a whole drop or to each chunk of it (``core.cleaning.chunks``: a key repeated across chunks is resolved
        after); ``earlier`` answers which ids of this drop the drops before it already hold
        (``core.cleaning.history``).
    prepare: ``(ids, *clean frames of needs, earlier) -> EarlierDrops``: fetch once per drop what its chunks will
        ask ``earlier`` (``ids(column)``: the drop's distinct ids of a raw column); None: ``earlier`` as it is.
    needs: kinds whose clean frames ``clean`` takes after the raw frame (their clean assets of the same drop are
        inputs).
    key: the record id column, unique after cleaning.
    latest_wins: when drops are read together, the latest drop's record of a key replaces the earlier ones
        (customers); otherwise every drop's rows are kept (transaction ids are unique across drops).
    time_column: the event time of a record, if it has one: its clean table is stored a row group per month in
        time order (``storage.time_groups``), so readers of a time window skip the earlier months.
    """

    kind: str
    record: str
    patterns: tuple[str, ...]
    form: str
    columns: tuple[str, ...]
    reader: Callable[..., Iterator[pa.Table]]
    clean: Callable[..., CleanResult]
    key: str
    raw_description: str
    contract_description: str
    clean_description: str
    needs: tuple[str, ...] = ()
    checks: tuple[ValueCheck, ...] = ()
    latest_wins: bool = False
    prepare: Callable[..., EarlierDrops] | None = None
    time_column: str | None = None

    @property
    def raw_asset(self) -> str:
        return f"raw_{self.kind}"

    @property
    def clean_asset(self) -> str:
        return f"clean_{self.kind}"

    @property
    def quarantine_asset(self) -> str:
        return f"quarantined_{self.kind}"

    @property
    def contract_check(self) -> str:
        return f"{self.kind}_contract"

    @property
    def unique_check(self) -> str:
        return f"{self.record}_ids_unique"

    @property
    def share_check(self) -> str:
        return f"{self.record}_quarantine_share"


def drop_ids(raw: pd.DataFrame, name: str) -> pa.Array:
    """The distinct non-missing ids of a raw column, as cleaning reads them."""
    return distinct_ids(column(raw, name))


def distinct_ids(values: pa.ChunkedArray) -> pa.Array:
    """The distinct non-missing ids of raw text values, as cleaning reads them."""
    return pc.drop_null(pc.unique(clean_text(values).combine_chunks()))


def _clean_customers(raw: pd.DataFrame, earlier: EarlierDrops) -> CleanResult:
    """One drop's customers; a later drop's record of a customer wins when drops are read together."""
    return clean_customers(raw)


def _clean_transactions(raw: pd.DataFrame, customers: pd.DataFrame, earlier: EarlierDrops) -> CleanResult:
    """One drop's transactions: known customers are this drop's and the earlier drops' (only the ids this drop
    uses and its own customers file lacks are looked up); a transaction_id of an earlier drop is a duplicate. The
    first drop skips the lookups (hashing 20M ids for nothing cost ~15 s and ~0.9 GiB at bench-pipeline size).
    A chunk of a drop gets ``earlier`` as :class:`KnownCustomers` (``prepare``): the known ids, built once."""
    if isinstance(earlier, KnownCustomers):
        seen = (
            None
            if earlier.empty
            else earlier.matching("transactions", "transaction_id", drop_ids(raw, "transaction_id"))
        )
        result = clean_transactions(raw, earlier.ids, earlier_ids=seen)
        result.references[CUSTOMERS.kind] = earlier.ids
        return result
    if earlier.empty:
        return clean_transactions(raw, customers["customer_id"])
    before = earlier.matching(CUSTOMERS.kind, CUSTOMERS.key, _not_own(drop_ids(raw, CUSTOMERS.key), customers))
    known = pd.concat(
        [customers["customer_id"], pd.Series(pd.arrays.ArrowStringArray(before.column("value").combine_chunks()))],
        ignore_index=True,
    )
    seen = earlier.matching("transactions", "transaction_id", drop_ids(raw, "transaction_id"))
    result = clean_transactions(raw, known, earlier_ids=seen)
    result.references[CUSTOMERS.kind] = pd.DataFrame({"customer_id": known.drop_duplicates(ignore_index=True)})
    return result


def _not_own(used: pa.Array, customers: pd.DataFrame) -> pa.Array:
    """The customer ids ``used`` that the drop's own clean customers lack (only those are looked up earlier)."""
    own = arrow(customers["customer_id"]).combine_chunks().cast(used.type)
    return used.filter(pc.invert(pc.is_in(used, value_set=own)))


class KnownCustomers:
    """What every chunk of one drop's transactions is checked against, fetched once for the drop (``prepare``):
    ``ids``, the known customer ids (the drop's own and those of earlier drops that its transactions use), and
    the earlier drops' transaction ids it holds (``matching``, as the :class:`EarlierDrops` it stands for)."""

    def __init__(self, ids: StringSet, earlier: EarlierDrops) -> None:
        self.ids = ids
        self._earlier = earlier

    @property
    def empty(self) -> bool:
        return self._earlier.empty

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        return self._earlier.matching(kind, column, values)


def _prefetch_for_transactions(
    ids: Callable[[str], pa.Array], customers: pd.DataFrame, earlier: EarlierDrops
) -> KnownCustomers:
    """What the chunks of one drop's transactions ask the earlier drops, and the known customer ids, fetched once
    for the whole drop (a chunk's known ids that way are the same as looked up for the chunk alone: only ids
    the drop uses are fetched)."""
    own = clean_text(arrow(customers["customer_id"]))
    if earlier.empty:
        return KnownCustomers(StringSet(own), earlier)
    before = earlier.matching(CUSTOMERS.kind, CUSTOMERS.key, _not_own(ids(CUSTOMERS.key), customers))
    seen = earlier.matching("transactions", "transaction_id", ids("transaction_id"))
    known = pa.chunked_array([*own.cast(pa.large_string()).chunks, *before.column("value").chunks], pa.large_string())
    return KnownCustomers(StringSet(known), PrefetchedDrops({("transactions", "transaction_id"): seen}))


CUSTOMERS = RawSource(
    kind="customers",
    record="customer",
    patterns=("customers*.csv",),
    form="csv",
    columns=contract.CUSTOMER_COLUMNS,
    reader=contract.iter_customers_file,
    clean=_clean_customers,
    key="customer_id",
    latest_wins=True,
    raw_description="Every customers*.csv in the raw location, read with pyarrow and checked against the contract.",
    contract_description="Every customers*.csv parses and has the contract columns; at least one file exists.",
    clean_description="Typed, normalised, de-duplicated customers (latest record wins).",
    checks=(
        ValueCheck(
            "customer_values_in_range",
            "customers with out-of-range values",
            customer_rules.out_of_range,
            f"age in [{rules.AGE_MIN}, {rules.AGE_MAX}] or missing, loyalty_points >= 0 or missing.",
        ),
    ),
)
TRANSACTIONS = RawSource(
    kind="transactions",
    record="transaction",
    patterns=("transactions*.json", "transactions*.jsonl"),
    form="json(l)",
    columns=contract.TRANSACTION_COLUMNS,
    reader=contract.iter_transactions_file,
    clean=_clean_transactions,
    prepare=_prefetch_for_transactions,
    key="transaction_id",
    time_column="timestamp",
    raw_description="Every transactions*.json / *.jsonl in the raw location (JSON Lines or array), contract-checked.",
    contract_description="Every transactions*.json(l) parses and has the contract columns; at least one file exists.",
    clean_description="Typed, UTC, de-duplicated usable transactions of known customers.",
    needs=("customers",),
    checks=(
        ValueCheck(
            "transaction_values_valid",
            "transactions with invalid values",
            transaction_rules.invalid_values,
            "amount > 0 and finite, timestamp present, status one of the contract's values.",
        ),
        ValueCheck(
            "transactions_reference_known_customers",
            "transactions of unknown customers",
            transaction_rules.unknown_customers,
            "Referential integrity: every transaction's customer_id is a clean customer.",
            needs=("customers",),
        ),
    ),
)

SOURCES: tuple[RawSource, ...] = (CUSTOMERS, TRANSACTIONS)
"""Every raw source, each after the sources it ``needs``."""
BY_KIND: dict[str, RawSource] = {source.kind: source for source in SOURCES}
