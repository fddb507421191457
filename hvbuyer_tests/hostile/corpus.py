"""A corpus of realistic bad and odd raw exports, each with the outcome a careful data engineer expects.

Every case is one extra file (or link) dropped next to a small valid drop. Its expected outcome is either

- :class:`Refused`: the blocking contract check of that source fails with a message naming the file and the
  problem (whatever the underlying parser raised), and no stored asset is replaced; or
- :class:`Accepted`: the run succeeds; the odd values are quarantined with reasons (``quarantined``: reason
  fragments that must appear for this file) and nothing is guessed (``clean``: values the clean table must hold).

Three principles the corpus proves: a value that cannot be read unambiguously (locale-formatted numbers,
ambiguous headers, a structure that is not rows) is quarantined or refused, never guessed; every refusal names the
file and the problem; a refused run replaces no stored asset (interim copies of raw data included).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HEADER = "customer_id,age,region,signup_date,loyalty_points"
# Customers of the base drop (datagen ids C0000001...) so transactions reference known customers.
KNOWN = "C0000001"


@dataclass(frozen=True)
class Refused:
    """The source's contract check fails; ``problem`` must appear in its message next to the file name."""

    check: str
    problem: str


@dataclass(frozen=True)
class Accepted:
    """The run succeeds. ``quarantined``: reason fragments of this file's quarantine rows; ``clean``:
    ``{id: {column: value}}`` the clean table must hold (None = missing); ``absent``: ids not in it."""

    quarantined: tuple[str, ...] = ()
    clean: dict[str, dict[str, object]] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


Outcome = Refused | Accepted


@dataclass(frozen=True)
class Case:
    """One hostile file: its name in the raw folder, how to write it, the expected outcome, and why."""

    id: str
    name: str
    write: Callable[[Path, Path], None]  # (path in the raw folder, a scratch folder outside it)
    outcome: Outcome
    why: str


def _bytes(content: bytes) -> Callable[[Path, Path], None]:
    def write(path: Path, scratch: Path) -> None:
        path.write_bytes(content)

    return write


def _csv(*rows: str, header: str = HEADER, newline: str = "\n", encoding: str = "utf-8") -> bytes:
    return newline.join([header, *rows, ""]).encode(encoding)


def _jsonl(*records: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _bare(content: bytes) -> bytes:
    """Unquote "@...@" values: bare NaN / Infinity tokens, as some JSON writers emit them."""
    return content.replace(b'"@', b"").replace(b'@"', b"")


def _good_tx(prefix: str, n: int = 5) -> list[dict]:
    """``n`` valid transactions (ids ``<prefix>G1``, ``<prefix>G2``, ...): the quarantine share is a drop's own, so
    a case whose few rows are mostly set aside comes with good rows, or its drop would be blocked (> 30 %)."""
    return [tx(f"{prefix}G{i}") for i in range(1, 1 + n)]


def tx(tid: str, **overrides: object) -> dict:
    record = {
        "transaction_id": tid,
        "customer_id": KNOWN,
        "amount": "42.50",
        "timestamp": "2026-06-01T10:00:00Z",
        "payment_method": "card",
        "status": "completed",
    }
    record.update(overrides)
    return record


def _symlink_outside(path: Path, scratch: Path) -> None:
    target = scratch / "customers_elsewhere.csv"
    target.write_bytes(_csv("H9000001,40,East,2024-01-01,10"))
    path.symlink_to(target)


def _gzip(content: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as handle:
        handle.write(content)
    return out.getvalue()


def _zip(content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("customers.csv", content)
    return out.getvalue()


def _one_line_array(records: int) -> bytes:
    """A JSON array of many records on one single line (~50 MB): valid JSON, just no line breaks."""
    one = json.dumps(tx("L{:07d}")).replace("{:07d}", "%07d")
    return ("[" + ",".join(one % i for i in range(records)) + "]").encode()


def _nested_record(depth: int) -> bytes:
    """One JSON Lines record whose amount is an object nested ``depth`` levels deep."""
    record = json.dumps(tx("X1", amount="@"))
    return record.replace('"@"', '{"a": ' * depth + "1" + "}" * depth).encode() + b"\n"


def _huge_single_line_csv(size: int) -> bytes:
    """A 'CSV' that is one line of ``size`` bytes without a line break: no header to read."""
    return b"customer_id;" + b"x" * (size - 12)


CASES: list[Case] = [
    # ------------------------------------------------------------------ customers: encodings and structure
    Case(
        "customers_latin1",
        "customers_latin1.csv",
        _bytes(_csv("H1000001,40,Zürich,2024-01-01,10", encoding="latin-1")),
        Refused("customers_contract", "UTF-8"),
        "Latin-1 bytes are not UTF-8: which characters they stand for is a guess (cp1252? latin-1?)",
    ),
    Case(
        "customers_utf16",
        "customers_utf16.csv",
        _bytes(codecs.BOM_UTF16_LE + _csv("H1000002,40,East,2024-01-01,10").decode().encode("utf-16-le")),
        Refused("customers_contract", "UTF-8"),
        "UTF-16 is not the contract's encoding; decoding it anyway would be a guess",
    ),
    Case(
        "customers_utf8_bom_crlf",
        "customers_bom.csv",
        _bytes(codecs.BOM_UTF8 + _csv("H1000003,41,East,2024-01-01,10", newline="\r\n")),
        Accepted(clean={"H1000003": {"age": 41.0, "region": "East"}}),
        "a UTF-8 byte-order mark and Windows line ends are unambiguous: read as the same text",
    ),
    Case(
        "customers_semicolons",
        "customers_semicolon.csv",
        _bytes(_csv("H1000004;40;East;2024-01-01;10", header=HEADER.replace(",", ";"))),
        Refused("customers_contract", "missing contract column(s)"),
        "another delimiter: the header has no contract column; guessing the delimiter is not done",
    ),
    Case(
        "customers_tabs",
        "customers_tabs.csv",
        _bytes(_csv("H1000005\t40\tEast\t2024-01-01\t10", header=HEADER.replace(",", "\t"))),
        Refused("customers_contract", "missing contract column(s)"),
        "tab-separated: same as another delimiter",
    ),
    Case(
        "customers_gzip_plain_name",
        "customers_gz.csv",
        _bytes(_gzip(_csv("H1000006,40,East,2024-01-01,10"))),
        Refused("customers_contract", "compressed"),
        "a gzip stream under a .csv name: the name promises plain text; not silently decompressed",
    ),
    Case(
        "customers_zip_plain_name",
        "customers_zip.csv",
        _bytes(_zip(_csv("H1000007,40,East,2024-01-01,10"))),
        Refused("customers_contract", "compressed"),
        "a zip archive under a .csv name",
    ),
    Case(
        "customers_duplicate_header",
        "customers_duphead.csv",
        _bytes(
            _csv("H1000008,40,50,East,2024-01-01,10", header="customer_id,age,age,region,signup_date,loyalty_points")
        ),
        Refused("customers_contract", "more than once"),
        "an ambiguous header (age twice): which column is the age is a guess",
    ),
    Case(
        "customers_header_case",
        "customers_case.csv",
        _bytes(_csv("H1000009,40,East,2024-01-01,10", header="Customer_ID,Age,Region,Signup_Date,Loyalty_Points")),
        Refused("customers_contract", "missing contract column(s)"),
        "column names are exact: 'Customer_ID' is not matched by guessing",
    ),
    Case(
        "customers_zero_bytes",
        "customers_empty.csv",
        _bytes(b""),
        Refused("customers_contract", "empty"),
        "a zero-byte file is an export that failed, not an empty export",
    ),
    Case(
        "customers_header_only",
        "customers_headeronly.csv",
        _bytes(_csv()),
        Accepted(),
        "a header and no rows is a valid, empty export",
    ),
    Case(
        "customers_still_being_written",
        "customers_partial.csv",
        _bytes(_csv("H1000010,40,East,2024-01-01,10").rstrip(b"\n") + b"\nH1000011,4"),
        Refused("customers_contract", "line 3"),
        "a file cut off mid-row (still being written): its last row is incomplete",
    ),
    Case(
        "customers_symlink_outside",
        "customers_link.csv",
        _symlink_outside,
        Refused("customers_contract", "symbolic link"),
        "a symlink out of the raw folder: the pipeline reads only what was dropped into it",
    ),
    Case(
        "customers_single_50mb_line",
        "customers_oneline.csv",
        _bytes(_huge_single_line_csv(50 * 1024 * 1024)),
        Refused("customers_contract", "missing contract column(s)"),
        "one 50 MB line without a break: no header; read without loading it as a header list",
    ),
    # ------------------------------------------------------------------ customers: values
    Case(
        "customers_locale_numbers",
        "customers_locale.csv",
        _bytes(_csv('H1000012,"35,5",East,2024-01-01,"1.200,50"', 'H1000013,40,East,2024-01-01,"1,200"')),
        Accepted(
            quarantined=("age '35,5'", "loyalty_points '1.200,50'"),
            clean={"H1000012": {"age": None, "loyalty_points": None}, "H1000013": {"loyalty_points": 1200.0}},
        ),
        "decimal commas are not guessed (1.200,50 is 1200.5 or 1.2005?): value missing; '1,200' groups thousands",
    ),
    Case(
        "customers_nan_infinity",
        "customers_nan.csv",
        _bytes(_csv("H1000014,NaN,East,2024-01-01,Infinity", "H1000015,inf,East,2024-01-01,-inf")),
        Accepted(
            quarantined=("loyalty_points 'Infinity'", "age 'inf'"),
            clean={"H1000014": {"age": None, "loyalty_points": None}, "H1000015": {"age": None}},
        ),
        "NaN is a null token; Infinity is not a usable number: value missing with the reason",
    ),
    Case(
        "customers_ambiguous_dates",
        "customers_dates.csv",
        _bytes(
            _csv("H1000016,40,East,05/01/2024,10", "H1000017,40,East,1704067200,10", "H1000018,40,East,2024-01-05,10")
        ),
        Accepted(
            quarantined=("signup_date '05/01/2024'", "signup_date '1704067200'"),
            clean={"H1000016": {"signup_date": None}, "H1000017": {"signup_date": None}},
        ),
        "05/01/2024 is May 1st or January 5th; a bare epoch number has no unit: missing, never guessed",
    ),
    Case(
        "customers_conflicting_duplicates",
        "customers_dup.csv",
        _bytes(_csv("H1000019,30,East,2024-01-01,10", "H1000019,60,West,2024-01-01,99")),
        Accepted(quarantined=("is repeated; the later record",), clean={"H1000019": {"age": 60.0, "region": "West"}}),
        "the same id twice with conflicting values: the latest record wins as a whole, the other is recorded",
    ),
    Case(
        "customers_out_of_range",
        "customers_range.csv",
        _bytes(_csv("H1000020,200,East,2024-01-01,-5", "H1000021,abc,East,2031-01-01,7")),
        Accepted(
            quarantined=("age 200 outside", "loyalty_points -5 is negative", "age 'abc'", "after the drop arrived"),
            clean={"H1000020": {"age": None, "loyalty_points": None}, "H1000021": {"age": None, "signup_date": None}},
        ),
        "impossible values become missing (the customer is kept), a signup after the drop arrived too",
    ),
    # ------------------------------------------------------------------ transactions: structure
    Case(
        "transactions_object_not_rows",
        "transactions_wrapped.json",
        _bytes(json.dumps({"transactions": [tx("W1"), tx("W2")]}).encode()),
        Refused("transactions_contract", "not rows"),
        "one JSON object wrapping the records is not rows: unwrapping it would guess the structure",
    ),
    Case(
        "transactions_array_of_arrays",
        "transactions_arrays.json",
        _bytes(json.dumps([["W3", KNOWN, "1.0"]]).encode()),
        Refused("transactions_contract", "not a JSON object"),
        "positional arrays have no field names",
    ),
    Case(
        "transactions_gzip_plain_name",
        "transactions_gz.json",
        _bytes(_gzip(_jsonl(tx("G1")))),
        Refused("transactions_contract", "compressed"),
        "a gzip stream under a .json name",
    ),
    Case(
        "transactions_utf16",
        "transactions_utf16.json",
        _bytes(codecs.BOM_UTF16_LE + _jsonl(tx("U1")).decode().encode("utf-16-le")),
        Refused("transactions_contract", "UTF-8"),
        "UTF-16 JSON is not the contract's encoding",
    ),
    Case(
        "transactions_zero_bytes",
        "transactions_empty.json",
        _bytes(b""),
        Refused("transactions_contract", "empty"),
        "a zero-byte file",
    ),
    Case(
        "transactions_empty_array",
        "transactions_none.json",
        _bytes(b"[]"),
        Accepted(),
        "an empty array is a valid, empty export",
    ),
    Case(
        "transactions_nested_100k_levels",
        "transactions_deep.jsonl",
        _bytes(_nested_record(100_000)),
        Refused("transactions_contract", "nested more than"),
        "a record nested 100,000 levels deep is no row of plain values (and no parser's recursion may crash on it)",
    ),
    Case(
        "transactions_10k_nested_arrays",
        "transactions_arrays_deep.json",
        _bytes(b"[" * 10_000 + b"]" * 10_000),
        Refused("transactions_contract", "nested more than"),
        "10,000 nested arrays: valid JSON, but no rows",
    ),
    Case(
        "transactions_truncated",
        "transactions_partial.jsonl",
        _bytes(_jsonl(tx("P1"), tx("P2"))[:-25]),
        Refused("transactions_contract", "line 2"),
        "a file cut off mid-record (still being written)",
    ),
    Case(
        "transactions_single_50mb_line",
        "transactions_oneline.json",
        _bytes(_one_line_array(300_000)),
        Accepted(clean={"L0000000": {"amount": 42.5}, "L0299999": {"amount": 42.5}}),
        "a 50 MB JSON array on one line is valid JSON: read in full",
    ),
    # ------------------------------------------------------------------ transactions: values
    Case(
        "transactions_nan_infinity",
        "transactions_nan.jsonl",
        _bytes(_bare(_jsonl(tx("N1", amount="@NaN@"), tx("N2", amount="@Infinity@"), *_good_tx("N")))),
        Accepted(quarantined=("amount",), absent=("N1", "N2"), clean={"NG1": {"amount": 42.5}}),
        "NaN/Infinity (not even JSON) are no amounts: rows set aside with the reason",
    ),
    Case(
        "transactions_mixed_zones_and_epochs",
        "transactions_zones.jsonl",
        _bytes(
            _jsonl(
                tx("Z1", timestamp="2026-06-01T12:00:00+02:00"),
                tx("Z2", timestamp="2026-06-01T10:00:00Z"),
                tx("Z3", timestamp="2026-06-01 10:00:00"),
                tx("Z4", timestamp=1780308000),
                tx("Z5", timestamp="1780308000000"),
                *_good_tx("Z"),
            )
        ),
        Accepted(
            quarantined=("timestamp '1780308000'", "timestamp '1780308000000'"),
            absent=("Z4", "Z5"),
            clean={
                "Z1": {"timestamp": "2026-06-01T10:00:00+00:00"},
                "Z2": {"timestamp": "2026-06-01T10:00:00+00:00"},
                "Z3": {"timestamp": "2026-06-01T10:00:00+00:00"},
            },
        ),
        "explicit zones are converted, no zone is UTC (the contract says so); epoch numbers (s? ms?) are not guessed",
    ),
    Case(
        "transactions_locale_amounts",
        "transactions_locale.jsonl",
        _bytes(
            _jsonl(tx("A1", amount="1.234,56"), tx("A2", amount="$1,234.50"), tx("A3", amount="12,5"), *_good_tx("A"))
        ),
        Accepted(
            quarantined=("amount '1.234,56'", "amount '12,5'"),
            absent=("A1", "A3"),
            clean={"A2": {"amount": 1234.5}},
        ),
        "'$1,234.50' is unambiguous; decimal commas are not guessed: rows set aside",
    ),
    Case(
        "transactions_wrong_json_types",
        "transactions_types.jsonl",
        _bytes(_jsonl(tx("B1", amount=True), tx("B2", amount={"value": 5}), tx("B3", amount=17.25), *_good_tx("B"))),
        Accepted(quarantined=("amount 'true'",), absent=("B1", "B2"), clean={"B3": {"amount": 17.25}}),
        "a boolean or an object is not an amount (a JSON number is)",
    ),
    Case(
        "transactions_conflicting_duplicates",
        "transactions_dup.jsonl",
        _bytes(_jsonl(tx("D1", amount="10"), tx("D1", amount="999"))),
        Accepted(quarantined=("is repeated; the later record",), clean={"D1": {"amount": 999.0}}),
        "the same transaction id twice with conflicting values: the latest copy wins, the other is recorded",
    ),
]


def write_case(case: Case, raw: Path, scratch: Path) -> Path:
    """Drop one case's file into the raw folder."""
    path = raw / case.name
    scratch.mkdir(parents=True, exist_ok=True)
    case.write(path, scratch)
    return path
