#!/usr/bin/env bash
# Write a small deterministic sample drop into the raw location if it holds no data yet.
set -euo pipefail
DATA_DIR="${HVBUYER_DATA_DIR:-./data}"
RAW="${HVBUYER_RAW_URI:-$DATA_DIR/raw}"
if [[ "$RAW" == s3://* ]]; then
  echo "raw location is $RAW: not generating sample data into S3"; exit 0
fi
if compgen -G "$RAW/customers*.csv" >/dev/null || compgen -G "$RAW/transactions*.json*" >/dev/null; then
  echo "raw data already present in $RAW"
else
  .venv/bin/python -m hvbuyer_assets.datagen --customers "${HVBUYER_SAMPLE_CUSTOMERS:-20000}" --out "$RAW" --seed 7
fi
