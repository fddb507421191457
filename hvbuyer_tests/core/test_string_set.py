"""StringSet answers membership exactly as Arrow's is_in, with a set built once: strings equal in the 64 leading
bytes that string_hashes reads hash alike and must still be told apart."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.cleaning.dedup import StringSet, string_hashes


def _is_in(values: pa.Array, members: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.is_in(values, value_set=members), False).to_numpy(zero_copy_only=False))


def test_membership_equals_arrow_is_in_with_nulls_repeats_and_hash_collisions() -> None:
    rng = np.random.default_rng(5)
    prefix = "x" * 64  # string_hashes reads 64 bytes: these all hash alike
    members = [f"C{i:07d}" for i in rng.choice(10_000, 3_000, replace=False)] + [prefix + "a", prefix + "b", ""]
    probes = [f"C{i:07d}" for i in rng.integers(0, 10_000, 5_000)] + [prefix + "b", prefix + "c", prefix, None, ""]
    member_array = pa.array(members + members[:50] + [None], pa.string())  # repeats and a null in the set
    probe_array = pa.chunked_array(
        [pa.array(probes[:2_000], pa.large_string()), pa.array(probes[2_000:], pa.large_string())]
    )
    hashes = string_hashes(pa.array([prefix + "a", prefix + "b", prefix + "c"]))
    assert len(set(hashes.tolist())) == 1  # the collision is real
    found = StringSet(member_array).contains(probe_array)
    assert (found == _is_in(probe_array.combine_chunks().cast(pa.string()), pc.drop_null(member_array))).all()
    assert found[-5:].tolist() == [True, False, False, False, True]
    assert not StringSet(pa.array([], pa.string())).contains(probe_array).any()
    assert len(StringSet(member_array)) == len(members)
