"""Two extra sequence tasks of the reference's data code: sorting and longest common subsequence
(../shared/reference/extra-tasks.md §4, §6).

No published number depends on them. Instances are multisets (uniform over multisets, numbered as
in qlf.tasks.sequence) shuffled by the salt. The reference configures no size for either; our
default sizes are our choice. Their probe features are the spec's *proposals* (§0.6), not
reference behaviour: the reference registers none.
"""
from __future__ import annotations

import numpy as np

from .base import EOS, EQ, Examples, Feature, FeatureLabels, Task, loss_mask_from, \
    random_permutations
from .sequence import SEQ_TOKENS, SHUFFLE_STREAM, MultisetSpace, _check_values

SORTING_TOKENS = tuple(str(d) for d in range(10)) + (",", EQ, EOS)
COMMA = 10


def _decimal_tokens(values: np.ndarray, offset: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Write each row of `values` (n, L) in 0..15 as `v_0,v_1,...` (a value >= 10 takes two digit
    tokens) into ids[r, offset[r]:]; return (n, L) the absolute position of each value's first
    token (the comma before value i > 0 sits one before it)."""
    n, L = values.shape
    two = values >= 10
    tok = np.stack([np.where(two, 1, values), values - 10, np.full_like(values, COMMA)], axis=2)
    comma = np.broadcast_to(np.arange(L) < L - 1, (n, L))  # no comma after the last value
    valid = np.stack([np.ones_like(two), two, comma], axis=2)
    flat_ok = valid.reshape(n, 3 * L)
    where = offset[:, None] + np.cumsum(flat_ok, axis=1, dtype=np.int32) - 1  # each cell's slot
    rows, cols = np.nonzero(flat_ok)
    ids[rows, where[rows, cols]] = tok.reshape(n, 3 * L)[rows, cols]
    return where.reshape(n, L, 3)[:, :, 0]


def remaining_values(w: np.ndarray) -> np.ndarray:
    """(n, L, 16) uint8: row k marks the values of w[k:], for rows w (n, L) sorted ascending
    (in a sorted row, the values left from slot k on are the present values >= w[k])."""
    n = len(w)
    present = np.zeros((n, 16), dtype=bool)
    present[np.arange(n)[:, None], w] = True
    return (present[:, None, :] & (np.arange(16) >= w[:, :, None])).astype(np.uint8)


class Sorting(Task):
    """Sort L values from 0..15 written in decimal: `v_0,..,v_{L-1}=w_0,..,w_{L-1}<EOS>` (§4).

    [FIX]es of the reference: values are sorted numerically (the reference sorts the value
    strings, 0,1,10,..,15,2,..,9), and every row is EOS-padded to T = 6L (the reference pads
    nothing, so rows of different length could not be batched). A value >= 10 takes two digit
    tokens, so '=' sits at 2L-1+c (c = values >= 10) and the first EOS at 4L-1+2c. A class is the
    multiset of values ([FIX] of the undefined reference sampler: uniform over multisets).
    Features (proposals): input_rank (counting sort's output slot of each input value) and
    remaining_set (the extract-min state before each output value).
    """

    name = "sorting"
    tokens = SORTING_TOKENS
    default_size = 16
    min_size = 1
    max_size = 40
    size_unit = "values"
    equivalence = "the multiset of values (it fixes the answer)"
    features = (
        Feature("input_rank", "regression",
                "row i = 0..L-1: the stable rank of input value i, #{j: v_j < v_i} + "
                "#{j < i: v_j = v_i} (its output slot); read at the last digit token of value i "
                "[proposal, spec §4.5]"),
        Feature("remaining_set", "multilabel",
                "row k = 0..L-1: the values (16) with a copy not yet emitted before output slot "
                "k; read at '=' for k=0, else at the ',' just before output value k (the token "
                "that predicts its first digit) [proposal, spec §4.5]"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.space = MultisetSpace(self.size, 16)

    @property
    def seq_len(self) -> int:
        return 6 * self.size

    @property
    def space_size(self) -> int:
        return self.space.size

    def _generate(self, index, salt, features):
        values = self.space.unrank(index).astype(np.int64)
        order = random_permutations(salt, self.size, stream=SHUFFLE_STREAM)
        return self._encode(np.take_along_axis(values, order, axis=1), index, features)

    def encode(self, values, features: bool = True) -> Examples:
        """Encode explicit inputs (n, L) of ints 0..15, in input order; keys = their multiset."""
        values = _check_values("values", values, self.size, 0, 15)
        return self._encode(values, self.space.rank(values), features)

    def _encode(self, v, keys, features) -> Examples:
        n, L = v.shape
        rows = np.arange(n)
        ids = np.full((n, self.seq_len), self.eos_id, dtype=np.uint8)
        first_in = _decimal_tokens(v, np.zeros(n, dtype=np.int64), ids)
        eq = 2 * L - 1 + (v >= 10).sum(axis=1)
        ids[rows, eq] = self.eq_id
        order = np.argsort(v, axis=1, kind="stable")
        w = np.take_along_axis(v, order, axis=1)
        first_out = _decimal_tokens(w, eq + 1, ids)
        feats = {}
        if features:
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(L)[None, :].repeat(n, 0), axis=1)
            last_digit = first_in + (v >= 10)
            left = remaining_values(w)
            q = np.concatenate([eq[:, None], first_out[:, 1:] - 1], axis=1)  # '=' or the ','
            feats = {
                "input_rank": FeatureLabels(last_digit.astype(np.int32), rank.astype(np.int64),
                                            "regression"),
                "remaining_set": FeatureLabels(q.astype(np.int32), left, "multilabel"),
            }
        return Examples(ids, loss_mask_from(ids, self.eq_id, self.eos_id),
                        np.asarray(keys, dtype=np.uint64), feats)


class LongestCommonSubsequence(Task):
    """`X_0..X_{L-1} Y_0..Y_{L-1} = Z <EOS>` with Z the reference's longest common subsequence of
    the strings X and Y, values 1..9 as letters B..J (token id = value); T = 3L+2 (§6).

    Z comes from the reference's backtrack through the LCS table from (L, L): on a match record
    X_{i-1} and step diagonally; otherwise step up (drop X's last element) when dp[i-1][j] >=
    dp[i][j-1], else left. An LCS is not unique; this tie-break is the task [KEEP]. A class is
    the multiset of all 2L values (the reference's activity-selection sampler), shuffled by the
    salt and cut into X (first L) and Y. Features (proposals): match_vector and dp_last_row at
    each Y_j, lcs_length at '='.
    """

    name = "longest_common_subsequence"
    tokens = SEQ_TOKENS
    default_size = 16
    min_size = 1
    max_size = 32
    size_unit = "values"
    equivalence = ("the multiset of all 2L values (X and Y are its shuffle cut in half), as the "
                   "reference's sampler draws them")
    features = (
        Feature("match_vector", "multilabel",
                "row j = 0..L-1: (1[X_i = Y_j]) for i = 0..L-1; read at position L+j (the token "
                "Y_j) [proposal, spec §6.5]"),
        Feature("dp_last_row", "regression",
                "row j: the LCS length of X and Y_0..Y_j, dp[L][j+1]; read at position L+j "
                "[proposal, spec §6.5]"),
        Feature("lcs_length", "regression",
                "one row: the answer's length; read at position 2L ('=') [proposal, spec §6.5]"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.space = MultisetSpace(2 * self.size, 9)

    @property
    def seq_len(self) -> int:
        return 3 * self.size + 2

    @property
    def space_size(self) -> int:
        return self.space.size

    def _generate(self, index, salt, features):
        values = self.space.unrank(index).astype(np.int64) + 1
        order = random_permutations(salt, 2 * self.size, stream=SHUFFLE_STREAM)
        values = np.take_along_axis(values, order, axis=1)
        return self._encode(values[:, :self.size], values[:, self.size:], index, features)

    def encode(self, x, y, features: bool = True) -> Examples:
        """Encode explicit strings x, y (n, L) of ints 1..9; keys = the multiset of all 2L."""
        x = _check_values("x", x, self.size, 1, 9)
        y = _check_values("y", y, self.size, 1, 9)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        return self._encode(x, y, self.space.rank(np.concatenate([x, y], axis=1) - 1), features)

    def _encode(self, x, y, keys, features) -> Examples:
        n, L = x.shape
        rows = np.arange(n)
        match = x[:, :, None] == y[:, None, :]  # (n, i, j)
        # The table one row at a time, with the examples on the last (contiguous) axis: a match
        # cell's dp[i][j] + 1 is never below its other two candidates, so dp[i+1][j+1] =
        # max(dp[i][j+1], match ? dp[i][j] + 1 : 0, dp[i+1][j]), and the last term unrolls into a
        # running maximum along the row.
        match_t = np.ascontiguousarray(match.transpose(1, 2, 0))  # (i, j, n)
        dp = np.zeros((L + 1, L + 1, n), dtype=np.int16)
        for i in range(L):
            above = np.maximum(dp[i, 1:], np.where(match_t[i], dp[i, :-1] + 1, 0))
            np.maximum.accumulate(above, axis=0, out=dp[i + 1, 1:])
        length = dp[L, L].astype(np.int64)
        ids = np.full((n, self.seq_len), self.eos_id, dtype=np.uint8)
        ids[:, :L] = x
        ids[:, L:2 * L] = y
        ids[:, 2 * L] = self.eq_id
        # backtrack, all rows in step, through flat indices of the (i, j, n) tables; recorded
        # values fill the answer from its end
        dp_flat, match_flat = dp.ravel(), match_t.ravel()
        i, j = np.full(n, L), np.full(n, L)
        slot = 2 * L + length  # position of the next recorded value (the last one first)
        for _ in range(2 * L):
            active = (i > 0) & (j > 0)
            if not active.any():
                break
            im, jm = np.maximum(i - 1, 0), np.maximum(j - 1, 0)
            hit = active & match_flat[(im * L + jm) * n + rows]
            ids[rows[hit], slot[hit]] = x[rows[hit], im[hit]]
            slot -= hit
            up = active & ~hit & (dp_flat[(im * (L + 1) + j) * n + rows]
                                  >= dp_flat[(i * (L + 1) + jm) * n + rows])
            left = active & ~hit & ~up
            i = i - (hit | up)
            j = j - (hit | left)
        feats = {}
        if features:
            pos = np.broadcast_to(np.arange(L, 2 * L, dtype=np.int32), (n, L)).copy()
            feats = {
                "match_vector": FeatureLabels(pos, match.transpose(0, 2, 1).astype(np.uint8),
                                              "multilabel"),
                "dp_last_row": FeatureLabels(pos.copy(), dp[L, 1:].T.astype(np.int64),
                                             "regression"),
                "lcs_length": FeatureLabels(np.full((n, 1), 2 * L, dtype=np.int32),
                                            length[:, None].copy(), "regression"),
            }
        return Examples(ids, loss_mask_from(ids, self.eq_id, self.eos_id),
                        np.asarray(keys, dtype=np.uint64), feats)
