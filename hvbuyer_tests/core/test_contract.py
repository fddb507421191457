"""Raw-file readers: all-string tables with lineage, and ContractViolation naming the file and the problem."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from hvbuyer_assets.core import contract
from hvbuyer_assets.core.contract import (
    CUSTOMER_COLUMNS,
    TRANSACTION_COLUMNS,
    ContractViolation,
    raw_to_frame,
    read_customers_file,
    read_transactions_file,
)

CUSTOMERS_HEADER = "customer_id,age,region,signup_date,loyalty_points"


def _tx(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "transaction_id": "T1",
        "customer_id": "C1",
        "amount": "12.50",
        "timestamp": "2024-01-01T10:00:00Z",
        "payment_method": "card",
        "status": "completed",
    }
    row.update(overrides)
    return row


def _jsonl(*rows: dict[str, object]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_customers_csv_is_all_strings_with_lineage_and_extras_dropped(tmp_path: Path) -> None:
    path = tmp_path / "customers_1.csv"
    path.write_text(
        f"{CUSTOMER_COLUMNS[0]},extra,{','.join(CUSTOMER_COLUMNS[1:])}\nC1,x,30,east,,007\nC2,y,,,2020-01-01,\n"
    )
    table = read_customers_file(path, "customers_1.csv")
    assert table.column_names == [*CUSTOMER_COLUMNS, "source_file", "source_row"]
    assert all(table.schema.field(c).type == pa.string() for c in CUSTOMER_COLUMNS)
    assert table.column("loyalty_points").to_pylist() == ["007", None]  # no numeric inference, empty -> null
    assert table.column("age").to_pylist() == ["30", None]
    assert table.column("source_file").to_pylist() == ["customers_1.csv"] * 2
    assert table.column("source_row").to_pylist() == [1, 2]


def test_contract_violation_message_and_pickling() -> None:
    err = pickle.loads(pickle.dumps(ContractViolation("drop.csv", "missing contract column(s): age")))
    assert (err.file, err.problem, str(err)) == (
        "drop.csv",
        "missing contract column(s): age",
        "drop.csv: missing contract column(s): age",
    )


def test_customers_header_only_file_is_valid_and_empty() -> None:
    table = read_customers_file(io.BytesIO(f"{CUSTOMERS_HEADER}\n".encode()), "customers_empty.csv")
    assert table.num_rows == 0
    assert table.column_names[: len(CUSTOMER_COLUMNS)] == list(CUSTOMER_COLUMNS)


def test_customers_missing_columns_are_listed() -> None:
    data = b"customer_id,age,signup_date\nC1,30,2020-01-01\n"
    with pytest.raises(ContractViolation) as err:
        read_customers_file(io.BytesIO(data), "customers_bad.csv")
    assert err.value.file == "customers_bad.csv"
    assert str(err.value).startswith("customers_bad.csv: ")
    assert "region" in err.value.problem and "loyalty_points" in err.value.problem
    assert "age" not in err.value.problem.split("(")[0]


def test_customers_garbage_csv_names_file_and_line() -> None:
    data = f"{CUSTOMERS_HEADER}\nC1,30,east,2020-01-01,5\nC2,31\n".encode()
    with pytest.raises(ContractViolation) as err:
        read_customers_file(io.BytesIO(data), "customers_garbage.csv")
    assert "customers_garbage.csv" in str(err.value)
    assert "unparseable CSV" in err.value.problem and "line 3" in err.value.problem


def test_customers_binary_garbage_is_a_violation() -> None:
    with pytest.raises(ContractViolation, match="customers_bin.csv: missing contract column"):
        read_customers_file(io.BytesIO(b"\x00\x01\xff\xfe garbage\n\x02,\x03\n"), "customers_bin.csv")


@pytest.mark.parametrize("reader", [read_customers_file, read_transactions_file])
def test_zero_byte_file_is_a_violation(tmp_path: Path, reader) -> None:  # noqa: ANN001
    path = tmp_path / "empty_drop"
    path.write_bytes(b"")
    with pytest.raises(ContractViolation, match="empty") as err:
        reader(path, "s3://bucket/raw/empty_drop")
    assert err.value.file == "s3://bucket/raw/empty_drop"


def test_transactions_jsonl_fast_path_from_path(tmp_path: Path) -> None:
    path = tmp_path / "transactions_1.jsonl"
    path.write_bytes(_jsonl(_tx(extra="dropped"), _tx(transaction_id="T2", payment_method=None)))
    table = read_transactions_file(path, "transactions_1.jsonl")
    assert table.column_names == [*TRANSACTION_COLUMNS, "source_file", "source_row"]
    assert all(table.schema.field(c).type == pa.string() for c in TRANSACTION_COLUMNS)
    assert table.column("transaction_id").to_pylist() == ["T1", "T2"]
    assert table.column("payment_method").to_pylist() == ["card", None]
    assert table.column("source_row").to_pylist() == [1, 2]


def test_transactions_key_absent_in_some_rows_reads_as_null() -> None:
    second = _tx(transaction_id="T2")
    del second["payment_method"]
    table = read_transactions_file(io.BytesIO(_jsonl(_tx(), second)), "t.jsonl")
    assert table.column("payment_method").to_pylist() == ["card", None]


def test_transactions_mixed_number_and_string_values_are_read_as_text() -> None:
    data = (
        b'{"transaction_id": "T1", "customer_id": 123, "amount": 12.50, "timestamp": "2024-01-01T00:00:00Z",'
        b' "payment_method": "card", "status": "completed"}\n'
        b'{"transaction_id": "T2", "customer_id": "C9", "amount": "$1,234.50",'
        b' "timestamp": "2024-01-01T00:00:00Z",'
        b' "payment_method": true, "status": "completed"}\n'
    )
    table = read_transactions_file(io.BytesIO(data), "mixed.jsonl")
    assert table.column("amount").to_pylist() == ["12.50", "$1,234.50"]  # the original number text is kept
    assert table.column("customer_id").to_pylist() == ["123", "C9"]
    assert table.column("payment_method").to_pylist() == ["card", "true"]


def test_transactions_nested_value_is_read_not_rejected() -> None:
    table = read_transactions_file(io.BytesIO(_jsonl(_tx(amount={"value": 5}))), "nested.jsonl")
    assert json.loads(table.column("amount")[0].as_py()) == {"value": 5}


def test_transactions_json_array(tmp_path: Path) -> None:
    path = tmp_path / "transactions_2.json"
    path.write_text("  \n" + json.dumps([_tx(amount=99.5), _tx(transaction_id="T2", customer_id=7, amount=None)]))
    table = read_transactions_file(path, "transactions_2.json")
    assert table.column("transaction_id").to_pylist() == ["T1", "T2"]
    assert table.column("amount").to_pylist() == ["99.5", None]
    assert table.column("customer_id").to_pylist() == ["C1", "7"]
    assert table.column("source_row").to_pylist() == [1, 2]


def test_transactions_empty_json_array_is_valid_and_empty() -> None:
    table = read_transactions_file(io.BytesIO(b"[]"), "none.json")
    assert table.num_rows == 0


def test_transactions_truncated_line_names_file_and_line() -> None:
    data = _jsonl(_tx(), _tx(transaction_id="T2")) + b'{"transaction_id": "T3", "customer_id": "C1", "amou'
    with pytest.raises(ContractViolation) as err:
        read_transactions_file(io.BytesIO(data), "transactions_cut.jsonl")
    assert str(err.value).startswith("transactions_cut.jsonl: line 3:")
    assert "truncated" in err.value.problem


def test_transactions_truncated_json_array_is_a_violation() -> None:
    data = json.dumps([_tx(), _tx(transaction_id="T2")]).encode()[:-20]
    with pytest.raises(ContractViolation, match=r"cut\.json: invalid JSON at line 1"):
        read_transactions_file(io.BytesIO(data), "cut.json")


def test_transactions_non_object_line_is_a_violation() -> None:
    with pytest.raises(ContractViolation, match="t.jsonl: line 2: not a JSON object"):
        read_transactions_file(io.BytesIO(_jsonl(_tx()) + b"[1, 2]\n"), "t.jsonl")


def test_transactions_missing_column_is_listed() -> None:
    rows = [_tx(), _tx(transaction_id="T2")]
    for row in rows:
        del row["status"]
    with pytest.raises(ContractViolation) as err:
        read_transactions_file(io.BytesIO(_jsonl(*rows)), "transactions_nostatus.jsonl")
    assert err.value.file == "transactions_nostatus.jsonl"
    assert "missing contract column(s): status" in err.value.problem


def test_transactions_column_present_but_always_null_is_not_missing() -> None:
    table = read_transactions_file(io.BytesIO(_jsonl(_tx(status=None))), "t.jsonl")
    assert table.column("status").to_pylist() == [None]


@pytest.mark.parametrize("data", [b"   \n\n", b"not json at all"])
def test_transactions_whitespace_or_garbage_is_a_violation(data: bytes) -> None:
    with pytest.raises(ContractViolation, match="^junk.jsonl: "):
        read_transactions_file(io.BytesIO(data), "junk.jsonl")


def test_raw_to_frame_uses_pyarrow_strings() -> None:
    frame = raw_to_frame(read_transactions_file(io.BytesIO(_jsonl(_tx(), _tx(status=None))), "t.jsonl"))
    for col in (*TRANSACTION_COLUMNS, "source_file"):
        assert frame[col].dtype == pd.StringDtype("pyarrow"), col
    assert frame["source_row"].dtype == "int64"
    assert frame["status"].isna().tolist() == [False, True]


def test_fallback_reads_chunk_by_chunk_and_reports_global_line() -> None:
    rows = [_tx(transaction_id=f"T{i}", amount=i + 0.5 if i % 2 else f"${i},000") for i in range(40)]
    chunks = list(contract.iter_transactions_file(io.BytesIO(_jsonl(*rows)), "many.jsonl", chunk_bytes=300))
    assert len(chunks) > 10  # many chunks for a small file
    table = pa.concat_tables(chunks)
    assert table.column("amount").to_pylist() == [
        r["amount"] if i % 2 == 0 else str(r["amount"]) for i, r in enumerate(rows)
    ]
    assert table.column("source_row").to_pylist() == list(range(1, 41))
    broken = _jsonl(*rows[:36]) + b'{"transaction_id": "T36", "amount": 1.5,\n' + _jsonl(*rows[37:])
    with pytest.raises(ContractViolation, match=r"^many\.jsonl: line 37: invalid JSON"):
        list(contract.iter_transactions_file(io.BytesIO(broken), "many.jsonl", chunk_bytes=300))


def test_csv_is_read_chunk_by_chunk_with_rows_numbered_across_chunks() -> None:
    body = "customer_id,age,region,signup_date,loyalty_points\n" + "".join(
        f"C{i},{20 + i % 50},East,2024-01-01,{i}\n" for i in range(500)
    )
    chunks = list(contract.iter_customers_file(io.BytesIO(body.encode()), "c.csv", chunk_bytes=1_000))
    assert len(chunks) > 10 and max(c.num_rows for c in chunks) < 100
    table = pa.concat_tables(chunks)
    assert table.column("source_row").to_pylist() == list(range(1, 501))
    assert table.column("customer_id").to_pylist() == [f"C{i}" for i in range(500)]
    broken = body.replace("C300,", "C300,x,", 1).encode()
    with pytest.raises(ContractViolation, match=r"^c\.csv: unparseable CSV: line 302 "):
        list(contract.iter_customers_file(io.BytesIO(broken), "c.csv", chunk_bytes=1_000))


def test_utf8_bom_jsonl_is_read() -> None:
    table = read_transactions_file(io.BytesIO(b"\xef\xbb\xbf" + _jsonl(_tx(), _tx(transaction_id="T2"))), "b.jsonl")
    assert table.column("transaction_id").to_pylist() == ["T1", "T2"]


def test_raw_to_frame_with_source_files_gives_a_categorical_that_survives_concat() -> None:
    names = ["b.jsonl", "a.jsonl", "unread.jsonl"]
    first = raw_to_frame(read_transactions_file(io.BytesIO(_jsonl(_tx(), _tx())), "b.jsonl"), source_files=names)
    second = raw_to_frame(read_transactions_file(io.BytesIO(_jsonl(_tx())), "a.jsonl"), source_files=names)
    assert first.columns.tolist() == [*TRANSACTION_COLUMNS, "source_file", "source_row"]
    raw = pd.concat([first, second], ignore_index=True)
    assert isinstance(raw["source_file"].dtype, pd.CategoricalDtype)
    assert raw["source_file"].cat.categories.tolist() == names
    assert raw["source_file"].cat.codes.dtype == "int8"  # 1 byte per row
    assert raw["source_file"].astype(str).tolist() == ["b.jsonl", "b.jsonl", "a.jsonl"]
    assert raw["source_row"].tolist() == [1, 2, 1]
    assert raw["transaction_id"].dtype == pd.StringDtype("pyarrow")


def test_raw_to_frame_rejects_a_file_not_in_source_files() -> None:
    table = read_transactions_file(io.BytesIO(_jsonl(_tx())), "t.jsonl")
    with pytest.raises(ValueError, match="'t.jsonl' is not one of"):
        raw_to_frame(table, source_files=["other.jsonl"])
