"""Numpy <-> message array fields: the fast path (lumina_nodes.fastpath) against plain assignment.

Both paths fill every array field of a JewelStateBatch of n jewels from numpy arrays and read them back
into numpy arrays; each is timed in the same run (best of several repeats). Serialization costs are
printed for context. Last line: one JSON object.

    python bench/msg_fastpath.py [--n 100000] [--repeats 7]
"""

import argparse
import json
import time

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message

from lumina_nodes.fastpath import from_field, to_field
from lumina_nodes.msg import JewelStateBatch


def make_arrays(n):
    rng = np.random.default_rng(0)
    return {
        "ids": np.arange(n, dtype=np.uint32),
        "phase": rng.uniform(-np.pi, np.pi, n),
        "frequency": rng.normal(1.0, 0.05, n),
        "frequency_offset": rng.uniform(-0.25, 0.25, n),
        "sample_age": rng.exponential(0.02, n),
        "intensity": rng.uniform(0, 1, n).astype(np.float32),
        "status": np.zeros(n, dtype=np.uint8),
    }


def naive_round_trip(arrays):
    msg = JewelStateBatch()
    for name, values in arrays.items():
        setattr(msg, name, values)
    return msg, {name: np.array(getattr(msg, name), dtype=values.dtype) for name, values in arrays.items()}


def fast_round_trip(arrays):
    msg = JewelStateBatch()
    for name, values in arrays.items():
        setattr(msg, name, to_field(values, values.dtype))
    return msg, {name: from_field(getattr(msg, name), values.dtype) for name, values in arrays.items()}


def best_ms(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats

    arrays = make_arrays(args.n)
    for path in (naive_round_trip, fast_round_trip):  # same values either way
        _, back = path(arrays)
        assert all(np.array_equal(back[k], v) for k, v in arrays.items()), path.__name__
    naive_ms = best_ms(lambda: naive_round_trip(arrays), repeats)
    fast_ms = best_ms(lambda: fast_round_trip(arrays), repeats)
    msg, _ = fast_round_trip(arrays)
    serialize_ms = best_ms(lambda: serialize_message(msg), repeats)
    data = serialize_message(msg)
    deserialize_ms = best_ms(lambda: deserialize_message(data, JewelStateBatch), repeats)

    print(
        f"JewelStateBatch with n = {args.n} jewels, 7 array fields ({len(data) / 1e6:.2f} MB serialized), "
        f"best of {repeats}"
    )
    print(f"{'path':<38}{'ms':>10}")
    print(f"{'naive: assign numpy, np.array back':<38}{naive_ms:>10.2f}")
    print(f"{'fast: to_field / from_field':<38}{fast_ms:>10.2f}")
    print(f"{'(context) serialize_message':<38}{serialize_ms:>10.2f}")
    print(f"{'(context) deserialize_message':<38}{deserialize_ms:>10.2f}")
    print(f"speedup {naive_ms / fast_ms:.1f}x (target >= 5)")
    print(
        json.dumps(
            {
                "n": args.n,
                "naive_ms": round(naive_ms, 3),
                "fast_ms": round(fast_ms, 3),
                "speedup": round(naive_ms / fast_ms, 2),
                "serialize_ms": round(serialize_ms, 3),
                "deserialize_ms": round(deserialize_ms, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
