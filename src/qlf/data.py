"""Seeded, disjoint data streams: held-out sets, probe sets and a never-repeating training stream.

Each task numbers its instance classes 0 .. space_size-1 (operand pairs, multisets, graphs; see
qlf.tasks.base). For a (task, size, seed) we fix one pseudo-random permutation of those numbers and
cut its positions into consecutive splits:

    [val | test | probe_train | probe_test | train ...................................]

Position p of the permutation holds class perm(p). The splits are disjoint *by construction* (a
permutation never repeats a class), the training stream never repeats an example, and any position
can be computed directly, so a run resumed at example k sees exactly the examples an uninterrupted
run would. No set of seen keys is kept anywhere.

The permutation is a Feistel network over a power-of-four domain with cycle walking, keyed by a
hash of (seed, task, size); each example's in-class choices (operand order, shuffle, relabelling)
come from a salt hashed from (key, class number), so the same class always looks the same under a
seed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .tasks.base import Examples, FeatureLabels, Task, mix64

SPLITS = ("val", "test", "probe_train", "probe_test", "train")


def _hash(*parts: int) -> int:
    """Stable 64-bit hash of integers (never Python's salted hash())."""
    h = np.uint64(0x243F6A8885A308D3)
    for p in parts:
        h = mix64(h ^ mix64(np.uint64(p & 0xFFFFFFFFFFFFFFFF)))
    return int(h)


def stream_key(task: Task, seed: int) -> int:
    """The 64-bit key of a task's data under a seed (same on every machine)."""
    return _hash(seed, zlib.crc32(task.name.encode()), task.size)


class Permutation:
    """A keyed pseudo-random permutation of [0, size), evaluated elementwise on uint64 arrays.

    Balanced Feistel network on 2*h bits (4**h >= size) with `rounds` rounds; values that land
    outside [0, size) are re-encrypted until they fall inside (cycle walking), which keeps it a
    bijection of [0, size). Since 4**h < 4*size, fewer than 4 walks are needed on average.
    """

    def __init__(self, size: int, key: int, rounds: int = 6):
        if size < 1:
            raise ValueError(f"permutation size must be >= 1, got {size}")
        if size > 2**64:
            raise ValueError(f"permutation size {size} exceeds 2**64")
        self.size = size
        self.half = max(1, ((size - 1).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half) - 1)
        self.round_keys = [np.uint64(_hash(key, r)) for r in range(rounds)]

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half)
        left, right = x >> h, x & self.mask
        for k in self.round_keys:
            left, right = right, left ^ (mix64(right ^ k) & self.mask)
        return (left << h) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        x = self._encrypt(np.asarray(positions, dtype=np.uint64))
        if self.size == 1 << (2 * self.half):
            return x
        size = np.uint64(self.size)
        outside = np.flatnonzero(x >= size)
        while outside.size:
            x[outside] = self._encrypt(x[outside])
            outside = outside[x[outside] >= size]
        return x


@dataclass(frozen=True)
class Layout:
    """How many examples each held-out split reserves at the head of the permutation.

    Every run, probe set and held-out set drawn with the same (task, size, seed) must use the same
    layout, or their splits would overlap differently.
    """

    n_val: int = 1000
    n_test: int = 1000
    n_probe_train: int = 10000
    n_probe_test: int = 1000

    def __post_init__(self):
        for name in ("n_val", "n_test", "n_probe_train", "n_probe_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"Layout.{name} must be >= 0, got {getattr(self, name)}")

    def bounds(self, split: str) -> tuple[int, int | None]:
        """[start, stop) positions of a split in the permutation (stop None: open-ended train)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
        sizes = [self.n_val, self.n_test, self.n_probe_train, self.n_probe_test]
        starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        i = SPLITS.index(split)
        return int(starts[i]), (int(starts[i + 1]) if i < 4 else None)

    @property
    def reserved(self) -> int:
        return self.n_val + self.n_test + self.n_probe_train + self.n_probe_test


class Stream:
    """All data of one (task, size, seed): held-out splits, probe splits and the training stream."""

    def __init__(self, task: Task, seed: int, layout: Layout = Layout()):
        self.task, self.seed, self.layout = task, int(seed), layout
        space = task.space_size
        if layout.reserved > space:
            raise ValueError(
                f"{task.name} size {task.size} has only {space} distinct instances, but the layout "
                f"reserves {layout.reserved} held-out examples ({layout}); use smaller n_val/n_test/"
                f"probe sizes or a larger task size")
        self.key = stream_key(task, self.seed)
        self.salt_key = np.uint64(_hash(self.key, 1))
        self.perm = Permutation(space, self.key)

    def n_available(self, split: str) -> int:
        start, stop = self.layout.bounds(split)
        return (self.task.space_size if stop is None else stop) - start

    def examples(self, split: str, start: int = 0, count: int | None = None,
                 features: bool = True) -> Examples:
        """Examples start .. start+count-1 of a split (the whole split when count is None)."""
        available = self.n_available(split)
        if count is None:
            if split == "train":
                raise ValueError("the train split is a stream: give a count")
            count = available - start
        if start < 0 or count < 0 or start + count > available:
            raise ValueError(
                f"{self.task.name} size {self.task.size}: asked for examples {start}..{start + count}"
                f" of split {split!r}, which holds {available} distinct instances")
        first, _ = self.layout.bounds(split)
        positions = np.arange(first + start, first + start + count, dtype=np.uint64)
        classes = self.perm(positions)
        return self.task.generate(classes, mix64(classes ^ self.salt_key), features=features)

    def train_batches(self, batch_size: int, start_example: int = 0,
                      features: bool = False, chunk: int = 65536) -> Iterator[Examples]:
        """Consecutive batches of the training stream from example `start_example` on.

        Generates `chunk`-sized blocks for speed and slices them; stops (with a ValueError) only
        when the task's space is exhausted.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        per_chunk = max(1, chunk // batch_size) * batch_size
        pos = start_example
        available = self.n_available("train")
        while True:
            if pos + batch_size > available:
                raise ValueError(
                    f"{self.task.name} size {self.task.size}: the training stream is exhausted "
                    f"after {available} distinct examples (asked for batch at example {pos})")
            n = min(per_chunk, (available - pos) // batch_size * batch_size)
            block = self.examples("train", pos, n, features=features)
            for i in range(0, n, batch_size):
                yield _slice(block, i, i + batch_size)
            pos += n


def _slice(ex: Examples, lo: int, hi: int) -> Examples:
    return Examples(ex.ids[lo:hi], ex.loss_mask[lo:hi], ex.keys[lo:hi],
                    {k: FeatureLabels(v.positions[lo:hi], v.labels[lo:hi], v.kind)
                     for k, v in ex.features.items()})
