"""Examples per second of every registered task (ids + loss mask + all feature labels).

    python bench/bench_tasks.py [--batch 65536] [--repeats 3] [--graphs-dir resources/graphs]
                                [--tasks addition multiplication ...] [--no-features]
                                [--graph-size N]

One thread (BLAS/OpenMP pools pinned to 1 before numpy loads), the paper's size of each task,
random class numbers and salts, best of `--repeats` timed calls after one warm-up call. Graph
tasks (at `--graph-size` nodes if given) need their graph file (graph{n}c.g6, perfect{n}.g6, ...)
in the graphs directory and are skipped with a note when it is missing.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qlf.tasks import DEFAULT_GRAPHS_DIR, TASKS, GraphTask, get_task  # noqa: E402


def bench_one(task, batch: int, repeats: int, features: bool, seed: int = 0) -> float:
    """Best examples/s over `repeats` calls of task.generate on one random batch."""
    rng = np.random.default_rng(seed)
    high = min(task.space_size, 2**64)
    index = rng.integers(0, high, size=batch, dtype=np.uint64)
    salt = rng.integers(0, 2**64, size=batch, dtype=np.uint64)
    task.generate(index[:1024], salt[:1024], features)  # warm-up (lazy loads, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        task.generate(index, salt, features)
        best = min(best, time.perf_counter() - start)
    return batch / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--graphs-dir", type=Path, default=DEFAULT_GRAPHS_DIR)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--no-features", action="store_true", help="ids and loss mask only")
    parser.add_argument("--graph-size", type=int, default=None,
                        help="nodes of every graph task (default: each task's default size)")
    args = parser.parse_args(argv)

    print(f"batch {args.batch}, best of {args.repeats}, one thread, "
          f"features {'off' if args.no_features else 'on'}")
    print(f"{'task':34s} {'size':>5s} {'seq_len':>7s} {'examples/s':>12s}  note")
    for name in args.tasks:
        cls = TASKS[name]
        size = getattr(cls, "default_size", None)
        is_graph = issubclass(cls, GraphTask)
        if is_graph and args.graph_size is not None:
            size = args.graph_size
        if is_graph and size is not None:
            graph_file = cls(size, graphs_dir=args.graphs_dir).graph_path  # opens nothing
            if not graph_file.exists():
                print(f"{name:34s} {size!s:>5s} {'-':>7s} {'-':>12s}  skipped: {graph_file} "
                      f"missing (make it with `qlf graphs`, or pass --graphs-dir)")
                continue
        try:
            task = get_task(name, size, graphs_dir=args.graphs_dir)
            rate = bench_one(task, args.batch, args.repeats, not args.no_features)
        except Exception as err:  # a task that cannot be built yet is reported, not fatal
            print(f"{name:34s} {size!s:>5s} {'-':>7s} {'-':>12s}  skipped: "
                  f"{type(err).__name__}: {err}")
            continue
        print(f"{name:34s} {task.size:5d} {task.seq_len:7d} {rate:12,.0f}")


if __name__ == "__main__":
    main()
