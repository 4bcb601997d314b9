"""The two sequence tasks: maximum subarray and activity selection.

Both draw their inputs as multisets (probes.md §4, pipeline.md §5.2): a class is a multiset of
values, numbered by the combinatorial number system, and the salt shuffles it into a sequence.
Vocabulary (pipeline.md §5.4): letters A..S = ids 0..18, '=' 19, EOS 20.
"""
from __future__ import annotations

from math import comb

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import EOS, EQ, Examples, Feature, FeatureLabels, Task, loss_mask_from, \
    random_permutations

LETTERS = tuple(chr(ord("A") + i) for i in range(19))
SEQ_TOKENS = LETTERS + (EQ, EOS)
SHUFFLE_STREAM = 1  # salt stream of the element shuffle


class MultisetSpace:
    """Multisets of `n_items` values from `n_kinds` kinds, numbered 0 .. size-1.

    Stars and bars: a multiset is a row of n_items stars and n_kinds-1 bars; the number of stars
    before bar i is how many items have kind <= i. The bar positions form a (n_kinds-1)-subset
    {b_0 < ... < b_{B-1}} of {0 .. n_items+B-1}, whose rank in the combinatorial number system
    is sum_i C(b_i, i+1). This is a bijection onto [0, C(n_items+B, B)).
    """

    def __init__(self, n_items: int, n_kinds: int):
        self.n_items, self.n_kinds = n_items, n_kinds
        self.n_bars = n_kinds - 1
        self.n_slots = n_items + self.n_bars
        self.size = comb(self.n_slots, self.n_bars)
        if self.size >= 2**63:
            raise ValueError(f"multisets of {n_items} items from {n_kinds} kinds: {self.size} "
                             "classes do not fit in int64")
        # binom[c, k] = C(c, k); every entry is <= C(n_slots-1, n_bars) < size < 2**63
        self.binom = np.array([[comb(c, k) for k in range(self.n_bars + 1)]
                               for c in range(self.n_slots)], dtype=np.int64)

    def unrank(self, index: np.ndarray) -> np.ndarray:
        """(n,) class numbers -> (n, n_items) int8 kinds, sorted ascending in each row."""
        rest = np.asarray(index, dtype=np.uint64)
        if rest.size and rest.max() >= self.size:
            raise ValueError(f"class number {int(rest.max())} out of range [0, {self.size})")
        rest = rest.astype(np.int64)
        rows = np.arange(len(rest))
        # steps[r, j] = bars just before star j; the running count of bars is star j's kind
        steps = np.zeros((len(rest), self.n_items + 1), dtype=np.int8)
        for k in range(self.n_bars, 0, -1):  # greedy: the largest b with C(b, k) <= rest
            col = self.binom[:, k]
            b = np.searchsorted(col, rest, side="right") - 1
            rest -= col[b]
            steps[rows, b - (k - 1)] += 1  # bar k-1 has b - (k-1) stars before it
        return np.cumsum(steps[:, :self.n_items], axis=1, dtype=np.int8)

    def rank(self, values: np.ndarray) -> np.ndarray:
        """(n, n_items) kinds in [0, n_kinds), any order -> (n,) uint64 class numbers."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.n_items:
            raise ValueError(f"values must have shape (n, {self.n_items}), got {values.shape}")
        if values.size and (values.min() < 0 or values.max() >= self.n_kinds):
            raise ValueError(f"kinds must lie in [0, {self.n_kinds}), got "
                             f"[{int(values.min())}, {int(values.max())}]")
        below = np.stack([(values <= i).sum(axis=1) for i in range(self.n_bars)], axis=1)
        bars = below + np.arange(self.n_bars)
        return self.binom[bars, np.arange(1, self.n_bars + 1)].sum(axis=1).astype(np.uint64)


def _check_values(name: str, arr, shape_cols: int, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] != shape_cols:
        raise ValueError(f"{name} must have shape (n, {shape_cols}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} values must lie in [{lo}, {hi}], got "
                         f"[{int(arr.min())}, {int(arr.max())}]")
    return arr.astype(np.int64)


class MaximumSubarray(Task):
    """Maximum-sum contiguous subarray of L values in [-9, 9] (value x has token id x + 9).

    Layout: x_0..x_{L-1} [0..L-1], '=' [L], the best subarray's elements, EOS, EOS padding to
    2L+2. The answer is Kadane's run with the reference's rules: meh_0 = x_0,
    meh_i = x_i + max(meh_{i-1}, 0) (a new run starts at i exactly when meh_{i-1} < 0), and the
    best is replaced only when meh_i > best (strict). Equivalent brute-force rule: among all
    subarrays [s, e] of maximum sum, the one with the smallest end e, and for that end the
    smallest start s. (Strict '>' keeps the first end reaching the maximum; a run is continued
    through meh == 0, so it begins at the earliest start whose sum to e is maximal.)
    Instances: multisets of the L values (uniform over multisets), shuffled by the salt.
    """

    name = "maximum_subarray"
    tokens = SEQ_TOKENS
    default_size = 64
    min_size = 1
    max_size = 76  # largest L with C(L+18, 18) < 2**63
    size_unit = "values"
    equivalence = "same multiset of values"
    features = (
        Feature("compute_prev_sign", "binary",
                "row r = 0..L-2: 1 if x_r < 0 (the previous element is negative); read at "
                "position 1+r, the token x_{r+1}"),
        Feature("intermediate_sums", "regression",
                "row r = 0..L-1: meh_r, Kadane's max-sum ending at r, except row 0 which is 0 "
                "[KEEP]; read at position 1+r, the token after x_r (position L is '=')"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.space = MultisetSpace(self.size, 19)

    @property
    def seq_len(self) -> int:
        return 2 * self.size + 2

    @property
    def space_size(self) -> int:
        return self.space.size

    def _generate(self, index, salt, features):
        values = self.space.unrank(index) - 9
        order = random_permutations(salt, self.size, stream=SHUFFLE_STREAM)
        return self._encode(np.take_along_axis(values, order, axis=1), index, features)

    def encode(self, x, features: bool = True) -> Examples:
        """Encode explicit sequences x (n, L) of ints in [-9, 9]; keys = their multiset's class."""
        x = _check_values("x", x, self.size, -9, 9)
        return self._encode(x, self.space.rank(x + 9), features)

    def _encode(self, x: np.ndarray, keys: np.ndarray, features: bool) -> Examples:
        n, L = x.shape
        # Kadane over positions, vectorised across examples. Small dtypes and an (L, n) layout
        # keep it memory-light: |meh| <= 9 * 76 fits int16.
        xt = np.ascontiguousarray(x.T, dtype=np.int8)
        meh = np.empty((L, n), dtype=np.int16)
        meh[0] = xt[0]
        best = meh[0].copy()
        run_start = np.zeros(n, dtype=np.int32)
        best_start = np.zeros(n, dtype=np.int32)
        best_end = np.zeros(n, dtype=np.int32)
        for i in range(1, L):
            run_start[meh[i - 1] < 0] = i  # a new run starts here
            np.add(xt[i], np.maximum(meh[i - 1], 0), out=meh[i])
            better = meh[i] > best  # strict: the first end reaching the maximum wins
            np.maximum(best, meh[i], out=best)
            np.copyto(best_start, run_start, where=better)
            best_end[better] = i

        ids = np.full((n, self.seq_len), self.eos_id, dtype=np.uint8)
        ids[:, :L] = x + 9
        ids[:, L] = self.eq_id
        # answer row r = ids[r, start_r : start_r + L] (inside the first 2L columns, since
        # start_r < L), with everything after the run's end turned into EOS
        window = sliding_window_view(ids[:, :2 * L], L, axis=1)[np.arange(n), best_start]
        inside = np.arange(L) <= (best_end - best_start)[:, None]
        ids[:, L + 1:2 * L + 1] = np.where(inside, window, np.uint8(self.eos_id))

        feats = {}
        if features:
            pos = np.broadcast_to(np.arange(1, L + 1, dtype=np.int32), (n, L)).copy()
            sums = meh.T.astype(np.int64)
            sums[:, 0] = 0  # [KEEP] the reference's row 0
            feats = {
                "compute_prev_sign": FeatureLabels(pos[:, :L - 1].copy(),
                                                   (x[:, :L - 1] < 0).astype(np.int64), "binary"),
                "intermediate_sums": FeatureLabels(pos, sums, "regression"),
            }
        return Examples(ids, loss_mask_from(ids, self.eq_id, self.eos_id),
                        np.asarray(keys, dtype=np.uint64), feats)


class ActivitySelection(Task):
    """Greedy activity selection for L activities with start s_i and duration d_i in [1, 9].

    Layout: s_0..s_{L-1} [0..L-1], ends e_i = s_i + d_i in [2, 18] [L..2L-1], '=' [2L], the
    selected activities as (start, end) token pairs in order of end time, EOS, EOS padding to
    4L+2. Token id = the value. Greedy: sort by end time, ties broken by activity index (stable
    sort), and select an activity iff its start >= the end of the last selected one.
    Instances: a multiset of 2L values from [1, 9] (uniform over multisets), shuffled by the
    salt; the first L are the starts, the last L the durations.
    """

    name = "activity_selection"
    tokens = SEQ_TOKENS
    default_size = 16
    min_size = 1
    max_size = 64
    size_unit = "activities"
    equivalence = "same multiset of starts and durations"
    features = (
        Feature("retrieve_start_times", "regression",
                "row r = 0..L-1: s_r, the start time of activity r; read at position L+r, the "
                "token e_r (the end time of the same activity)"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.space = MultisetSpace(2 * self.size, 9)

    @property
    def seq_len(self) -> int:
        return 4 * self.size + 2

    @property
    def space_size(self) -> int:
        return self.space.size

    def _generate(self, index, salt, features):
        values = self.space.unrank(index) + 1
        order = random_permutations(salt, 2 * self.size, stream=SHUFFLE_STREAM)
        values = np.take_along_axis(values, order, axis=1)
        return self._encode(values[:, :self.size], values[:, self.size:], index, features)

    def encode(self, starts, durations, features: bool = True) -> Examples:
        """Encode explicit activities, starts and durations (n, L) of ints in [1, 9];
        keys = the class of the multiset of all 2L values."""
        starts = _check_values("starts", starts, self.size, 1, 9)
        durations = _check_values("durations", durations, self.size, 1, 9)
        if len(starts) != len(durations):
            raise ValueError(f"starts has {len(starts)} rows but durations has {len(durations)}")
        keys = self.space.rank(np.concatenate([starts, durations], axis=1) - 1)
        return self._encode(starts, durations, keys, features)

    def _encode(self, starts, durations, keys, features) -> Examples:
        n, L = starts.shape
        ends = starts + durations
        order = np.argsort(ends, axis=1, kind="stable")
        s_sorted = np.take_along_axis(starts, order, axis=1)
        e_sorted = np.take_along_axis(ends, order, axis=1)
        chosen = np.zeros((n, L), dtype=bool)
        last_end = np.zeros(n, dtype=np.int64)  # every start is >= 1, so the first fits
        for k in range(L):
            chosen[:, k] = s_sorted[:, k] >= last_end
            last_end = np.where(chosen[:, k], e_sorted[:, k], last_end)

        ids = np.full((n, self.seq_len), self.eos_id, dtype=np.uint8)
        ids[:, :L] = starts
        ids[:, L:2 * L] = ends
        ids[:, 2 * L] = self.eq_id
        rows, cols = np.nonzero(chosen)
        slot = 2 * L + 1 + 2 * (np.cumsum(chosen, axis=1) - 1)[rows, cols]
        ids[rows, slot] = s_sorted[rows, cols]
        ids[rows, slot + 1] = e_sorted[rows, cols]

        feats = {}
        if features:
            pos = np.broadcast_to(np.arange(L, 2 * L, dtype=np.int32), (n, L)).copy()
            feats["retrieve_start_times"] = FeatureLabels(pos, starts.astype(np.int64),
                                                          "regression")
        return Examples(ids, loss_mask_from(ids, self.eq_id, self.eos_id),
                        np.asarray(keys, dtype=np.uint64), feats)
