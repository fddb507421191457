"""Synthetic, deliberately messy raw data for hvbuyer: ``customers.csv`` + ``transactions.json`` (JSON Lines).

Usage::

    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw
    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw --as-of 2026-09-28 --days 90 --drop q3
    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw --as-of 2026-09-28 --days 90 \\
        --drift behaviour --drop q3drift   # instead of q3: same quarter, drifted

Determinism: the same arguments give byte-identical files. Customers depend only on
``(seed, n_customers, drift)`` (``behaviour`` and ``concept`` drift keep the ``none`` customers), so a later drop
(``--as-of`` later, ``--days 90``) with the same seed describes the same customers (ids ``C0000001``..,
zero-padded to max(7, digits of N)) and brings NEW transactions with timestamps in
``(as_of - days, as_of]`` (``as_of`` = midnight UTC of that date). The transaction stream is seeded from
``(seed, as_of, days, drift)``; transaction ids embed the window end date (``T20260630-000000001``, with a
``D``/``B``/``C`` tag after the date for drifted drops), so windows ending on different dates never share an id.
Keep ``as_of`` at or before the day the drop lands: the pipeline sets aside transactions stamped after
their file arrived (the CLI warns).

The world (figures for ``drift="none"``):

- age = 18 + 68 * Beta(2, 4.5), integer in [18, 85]: skewed to the young, mean ~38.4.
- region shares North 30%, South 24%, East 20%, West 16%, Central 10%.
- signup dates over the 5 years before ``SIGNUP_ANCHOR`` (2026-06-30, fixed so that customers do not depend
  on ``as_of``); ~36% fall inside the default 730-day window, so part of the base has a short history.
  With an ``--as-of`` before the anchor, customers who sign up later simply have no transactions yet.
- a latent spend propensity ``z0`` = age effect (peak ~47 years) + region effect (West > Central > East >
  North > South) + N(0, 0.9). It drifts slowly per customer: ``z(t) = z0 + amp * sin(2 pi (t - anchor) /
  period + phase)`` with amp ~ U(0.2, 1.0), period ~ U(2, 6) years, so recent behaviour says more about the
  next 90 days than old behaviour.
- loyalty_points: lognormal in ``z0`` and tenure (heavy tail: median ~240, p99 ~4 000, max ~10^5 at 1M
  customers); 8% zero (30% for customers of less than 3 months).
- purchases: a Poisson process per customer with rate ``10/year * exp(0.55 z(t))`` (piecewise constant on
  15-day segments, only after signup): ~20 transactions per customer over 730 days. Amount =
  lognormal(log 55 + 0.40 z(t), 0.8), in cents, clipped to [1, 50 000] USD (~5.5% of purchases >= $300).
  Statuses completed 85%, pending 5%, refunded 6%, failed 4%; payment methods card 52%, paypal 20%,
  apple_pay 9%, bank_transfer 8%, google_pay 6%, gift_card 5% (independent of the amount).
- label signal (completed purchase >= $300 in the last 90 days of the window, features at the start of those
  90 days): prevalence ~10%; a random forest trained one horizon earlier reaches a hold-out ROC-AUC of
  ~0.81 with behaviour features and ~0.66 with age/region/loyalty only (measured at N = 50 000).

Drift:

- ``demographics``: age = 18 + 68 * Beta(2.7, 3.6) (mean ~46.7, i.e. +8 years) and region shares North 14%,
  South 18%, East 20%, West 28%, Central 20%. The spend model is unchanged, so propensities follow the new
  population (label prevalence ~12%).
- ``behaviour``: same customers as ``none``; amounts x1.6 and purchase rates x0.75 (~15 transactions per
  customer over 730 days, spend per customer ~x1.2, share of purchases >= $300 5.5% -> ~14%, label
  prevalence ~18%).
- ``concept``: same customers as ``none``; each one's spend propensity (and its slow drift) is another
  customer's (a fixed permutation of the seed): who will spend is no longer who spent, nor predicted by age,
  region or loyalty points, while the population's behaviour, and so every feature's distribution, is unchanged.
  A concept shift that only realised performance can see: the sample's champion realises a ROC-AUC of ~0.51 on a
  100-day concept drop against its hold-out ~0.79, with the drift verdict ``no_drift``.

Mess (shares of rows; :func:`generate` returns exactly what is written):

- customers.csv: age missing 1% / impossible (-3, 0, 7, 150, 250, 999) 0.5%; region in other case or with
  spaces (" east", "WEST ", "north  ", "  Central") 1.5% / missing 0.8%; loyalty_points negative 0.5% /
  missing 0.3%; signup_date missing 0.5%; 1% of ids repeated at the end of the file with an updated
  loyalty_points (70%) or region (30%): the later row is the newer record; 0.1% extra rows without
  customer_id. A missing value is an empty field (nothing between the commas); nothing is quoted.
- transactions.json: amount always a JSON string: "123.45"; "$1,234.50" / "$45.10" 1.5%; "1,234.50" for
  30% of the other amounts >= 1000; " 12.5 " 0.3%; "" 0.2%; null 0.2%; "N/A" 0.1%; negative "-12.50" 0.1%.
  timestamp "2026-01-31T12:00:00Z" mostly; same instant as "...+02:00" 1.5% / "...-05:00" 1.5%;
  fractional seconds "...:00.123Z" 0.6%; unparseable ("not a date", "0000-00-00T00:00:00Z", "") 0.25%;
  null 0.25%. Exact duplicate lines (next to the original) 1%; transactions of unknown customers (ids above
  N) 0.4%; transaction_id null 0.15% / key omitted 0.1%; customer_id null 0.15% / key omitted 0.1%;
  status "Completed" / " COMPLETED " 0.8%; payment_method null 0.3% / " CARD " style 0.5%.
  Lines are in time order. A bare ``pyarrow.json.read_json`` of the file succeeds.
"""

from hvbuyer_assets.datagen.cli import main
from hvbuyer_assets.datagen.transactions import STATUSES
from hvbuyer_assets.datagen.world import DEFAULT_AS_OF, DEFAULT_DAYS, DRIFTS
from hvbuyer_assets.datagen.writing import drop_paths, generate, write_drop

__all__ = ["DEFAULT_AS_OF", "DEFAULT_DAYS", "DRIFTS", "STATUSES", "drop_paths", "generate", "main", "write_drop"]
