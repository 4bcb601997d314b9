"""The three binary tasks: addition, multiplication and majority of majorities.

Vocabulary ("0", "1", "+", "=", "<EOS>"), ids 0..4. Every number is written LSB-first (the
reference's input_reverse = output_reverse = True), so bit i of a number sits i tokens after its
first bit.

Each task has an explicit encoder (`encode`) and `_generate` only unranks class numbers and then
calls it, so answers, feature labels and keys always come from one code path. The answer and all
feature labels are computed in the same vectorised pass from the same integers.
"""
from __future__ import annotations

import numpy as np

from .base import Examples, Feature, FeatureLabels, Task, loss_mask_from, random_below

ZERO, ONE, PLUS, EQ_ID, EOS_ID = range(5)
BINARY_TOKENS = ("0", "1", "+", "=", "<EOS>")
_ORDER_STREAM = 1  # random_below stream that picks the operand order inside a class


def unpack_lsb(words: np.ndarray, width: int) -> np.ndarray:
    """uint8 bits of uint64 `words` (any shape), LSB first: result[..., i] = bit i, i < width."""
    words = np.ascontiguousarray(words, dtype="<u8")
    nbytes = (width + 7) // 8
    as_bytes = words.view(np.uint8).reshape(*words.shape, 8)[..., :nbytes]
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :width]


def _positions(row: np.ndarray, n: int) -> np.ndarray:
    """The same absolute positions for all n examples, as an (n, R) int32 array."""
    return np.repeat(np.asarray(row, dtype=np.int32)[None, :], n, axis=0)


# -- operand pairs ---------------------------------------------------------------------------------

class _OperandPairTask(Task):
    """Shared by addition and multiplication: two L-bit operands, instance space = unordered pairs.

    Classes are the pairs lo <= hi < N = 2**L, numbered 0 .. N(N+1)/2 - 1 by folding the triangle
    of pairs into an (N/2) x (N+1) rectangle: rectangle row i holds triangle row lo = i
    (N - i pairs) followed by triangle row lo = N-1-i (i + 1 pairs). Class k is rectangle cell
    (k // (N+1), k % (N+1)). Only exact uint64 integer arithmetic is used, so it works for L = 32
    (about 2**63 classes).
    """

    tokens = BINARY_TOKENS
    default_size = 16
    min_size = 1
    max_size = 32
    size_unit = "bits"
    equivalence = "the unordered operand pair {a, b}: (a, b) and (b, a) are the same instance"

    @property
    def n_values(self) -> int:
        return 1 << self.size

    @property
    def space_size(self) -> int:
        n = self.n_values
        return n * (n + 1) // 2

    def unrank(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class numbers -> (lo, hi) uint64 with lo <= hi (the inverse of `rank`)."""
        index = np.asarray(index, dtype=np.uint64)
        if index.size and int(index.max()) >= self.space_size:
            raise ValueError(f"{self.name}-{self.size}: class number {int(index.max())} out of "
                             f"range; allowed 0..{self.space_size - 1}")
        n = np.uint64(self.n_values)
        row, col = np.divmod(index, n + np.uint64(1))
        first_part = col < n - row  # the cell lies in triangle row lo = row
        lo = np.where(first_part, row, n - np.uint64(1) - row)
        hi = np.where(first_part, row + col, lo + (col - (n - row)))
        return lo, hi

    def rank(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Class number (uint64) of the unordered pairs {a, b}."""
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        n = np.uint64(self.n_values)
        upper = lo >= n // np.uint64(2)  # second part of a rectangle row
        row = np.where(upper, n - np.uint64(1) - lo, lo)
        col = np.where(upper, (n - row) + (hi - lo), hi - lo)
        return row * (n + np.uint64(1)) + col

    def _check_operands(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim != 1 or a.shape != b.shape:
            raise ValueError(f"{self.name}: operands must be 1-D arrays of the same length, got "
                             f"shapes {a.shape} and {b.shape}")
        for name, x in (("a", a), ("b", b)):
            if x.size and (x.dtype.kind not in "iu" or int(x.min()) < 0
                           or int(x.max()) >= self.n_values):
                raise ValueError(f"{self.name}-{self.size}: operand {name} must hold integers in "
                                 f"0..{self.n_values - 1} (dtype {x.dtype})")
        return a.astype(np.uint64), b.astype(np.uint64)

    def _prompt(self, a_bits: np.ndarray, b_bits: np.ndarray) -> np.ndarray:
        """ids with `a + b =` filled in; the answer and EOS part is left for the caller."""
        n, L = len(a_bits), self.size
        ids = np.empty((n, self.seq_len), dtype=np.uint8)
        ids[:, :L] = a_bits
        ids[:, L] = PLUS
        ids[:, L + 1:2 * L + 1] = b_bits
        ids[:, 2 * L + 1] = EQ_ID
        return ids

    def _retrieve_first_op(self, a_bits: np.ndarray) -> FeatureLabels:
        L = self.size
        pos = _positions(2 * L + 1 + np.arange(L), len(a_bits))
        return FeatureLabels(pos, a_bits, "binary")

    def encode(self, a, b, features: bool = True) -> Examples:
        """Encode the explicit instances `a + b` (first operand a); keys are their class numbers."""
        a, b = self._check_operands(a, b)
        return self._encode(a, b, self.rank(a, b), features)

    def _generate(self, index: np.ndarray, salt: np.ndarray, features: bool) -> Examples:
        lo, hi = self.unrank(index)
        swap = random_below(salt, 2, stream=_ORDER_STREAM)[:, 0].astype(bool)
        a, b = np.where(swap, hi, lo), np.where(swap, lo, hi)
        return self._encode(a, b, index, features)

    def _encode(self, a, b, keys, features) -> Examples:
        raise NotImplementedError


class Addition(_OperandPairTask):
    """`a_0..a_{L-1} + b_0..b_{L-1} = s_0..s_L <EOS>`, L-bit operands, (L+1)-bit sum, LSB-first."""

    name = "addition"
    features = (
        Feature("retrieve_first_op", "binary",
                "row r = a_r, bit r (weight 2^r) of the first operand; read at position 2L+1+r "
                "(r=0: the '=' token, r>=1: sum bit s_{r-1}, the token that predicts s_r)"),
        Feature("carry", "binary",
                "row r = c_{r+1}, the carry out of column r of a+b (c_0 = 0); read at position "
                "2L+2+r (sum bit s_r, the token that predicts s_{r+1})"),
    )

    @property
    def seq_len(self) -> int:
        return 3 * self.size + 4

    def _encode(self, a, b, keys, features) -> Examples:
        L, n = self.size, len(a)
        a_bits, b_bits = unpack_lsb(a, L), unpack_lsb(b, L)
        sum_bits = unpack_lsb(a + b, L + 1)  # a + b < 2**33 fits uint64
        ids = self._prompt(a_bits, b_bits)
        ids[:, 2 * L + 2:3 * L + 3] = sum_bits
        ids[:, 3 * L + 3] = EOS_ID
        labels = {}
        if features:
            # s_i = a_i ^ b_i ^ c_i, so the carry into column i is s_i ^ a_i ^ b_i.
            carry_in = sum_bits[:, 1:] ^ np.pad(a_bits ^ b_bits, ((0, 0), (0, 1)))[:, 1:]
            labels["retrieve_first_op"] = self._retrieve_first_op(a_bits)
            labels["carry"] = FeatureLabels(_positions(2 * L + 2 + np.arange(L), n),
                                            carry_in, "binary")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


class Multiplication(_OperandPairTask):
    """`a_0..a_{L-1} + b_0..b_{L-1} = p_0..p_{2L-1} <EOS>`: the product a*b in 2L bits, LSB-first.

    The operator token is '+' as in the reference. Features are per instance because there is one
    `carry_k` per k = 1..L. There is no plain `carry` feature: the reference's one reads the
    carry_16 labels at the wrong positions (hazard H2).
    """

    name = "multiplication"

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.features = (
            Feature("retrieve_first_op", "binary",
                    "row r = a_r, bit r of the first operand; read at position 2L+1+r "
                    "(r=0: '=', r>=1: product bit p_{r-1})"),
        ) + tuple(
            Feature(f"carry_{k}", "binary",
                    f"row r = the carry into column {k}+r while adding the partial product "
                    f"(a*b_{k - 1}) << {k - 1} to a*(b mod 2^{k - 1}) (all zeros if "
                    f"b_{k - 1} = 0); read at position 2L+{k + 1}+r (product bit p_{k - 1}+r, "
                    f"the token that predicts p_{k}+r)")
            for k in range(1, self.size + 1))

    @property
    def seq_len(self) -> int:
        return 4 * self.size + 3

    def _encode(self, a, b, keys, features) -> Examples:
        L, n = self.size, len(a)
        a_bits, b_bits = unpack_lsb(a, L), unpack_lsb(b, L)
        ids = self._prompt(a_bits, b_bits)
        ids[:, 2 * L + 2:4 * L + 2] = unpack_lsb(a * b, 2 * L)  # a*b < 2**64: exact in uint64
        ids[:, 4 * L + 2] = EOS_ID
        labels = {}
        if features:
            labels["retrieve_first_op"] = self._retrieve_first_op(a_bits)
            # Step k adds pp = (a * b_{k-1}) << (k-1) to the running sum a * (b mod 2^{k-1});
            # both are < 2**64 and so is their sum, and (sum ^ s ^ pp) has the carry into each
            # column. Columns k .. k+L-1 of step k, for all k at once: shape (n, L) words.
            k = np.arange(1, L + 1, dtype=np.uint64)
            low_mask = (np.uint64(1) << (k - np.uint64(1))) - np.uint64(1)
            running = a[:, None] * (b[:, None] & low_mask)
            pp = (a[:, None] << (k - np.uint64(1))) * b_bits.astype(np.uint64)
            carries = unpack_lsb(((running + pp) ^ running ^ pp) >> k, L)  # (n, L, L)
            for j in range(L):
                labels[f"carry_{j + 1}"] = FeatureLabels(
                    _positions(2 * L + 2 + j + np.arange(L), n), carries[:, j], "binary")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


# -- majority of majorities ------------------------------------------------------------------------

class MajorityOfMajority(Task):
    """`x_0..x_{2L-1} = y <EOS>`: is the majority of the four group majorities 1?

    Decision (the reference notes disagree): size L gives a 2L-bit input, as in the reference's
    data (pipeline.md §2.2, §12.7), not L bits (probes.md §4). The 2L bits form 4 contiguous groups
    of G = L/2 bits; group g has a majority iff its popcount > G/2, and y = 1 iff more than 2 of the
    4 groups have a majority. L must be even. Every 2L-bit string is its own class, numbered by the
    string itself (bit i = x_i); rows are drawn independently (no x / -x pairs, pipeline.md §5.1).
    """

    name = "majority_of_majority"
    tokens = BINARY_TOKENS
    default_size = 32
    min_size = 2
    max_size = 32
    size_unit = "bits"
    equivalence = "none: every 2L-bit input string is its own instance"
    features = (
        Feature("group_majority", "binary",
                "row g (g = 0..3) = 1 iff group g has popcount > G/2; read at the last bit of "
                "group g, position (g+1)*G-1"),
        Feature("group_popcount", "regression",
                "row g (g = 0..3) = number of ones in group g (0..G); read at the last bit of "
                "group g, position (g+1)*G-1"),
    )

    def _check_size(self, size: int) -> None:
        if size % 2:
            raise ValueError(f"{self.name}: size {size} must be even (the 2L input bits form 4 "
                             f"equal groups); allowed even sizes {self.min_size}..{self.max_size}")

    @property
    def n_bits(self) -> int:
        return 2 * self.size

    @property
    def group_size(self) -> int:
        return self.n_bits // 4

    @property
    def seq_len(self) -> int:
        return self.n_bits + 3

    @property
    def space_size(self) -> int:
        return 1 << self.n_bits

    def encode(self, bits, features: bool = True) -> Examples:
        """Encode explicit inputs `bits` (n, 2L) of 0/1; keys are the bit strings as integers."""
        bits = np.asarray(bits)
        if bits.ndim != 2 or bits.shape[1] != self.n_bits:
            raise ValueError(f"{self.name}-{self.size}: bits must have shape (n, {self.n_bits}), "
                             f"got {bits.shape}")
        if bits.size and (bits.dtype.kind not in "iub" or not np.isin(bits, (0, 1)).all()):
            raise ValueError(f"{self.name}: bits must be integers 0 or 1 (dtype {bits.dtype})")
        bits = bits.astype(np.uint8)
        keys = np.bitwise_or.reduce(
            bits.astype(np.uint64) << np.arange(self.n_bits, dtype=np.uint64), axis=1)
        return self._encode(bits, keys, features)

    def _generate(self, index: np.ndarray, salt: np.ndarray, features: bool) -> Examples:
        if index.size and int(index.max()) >= self.space_size:
            raise ValueError(f"{self.name}-{self.size}: class number {int(index.max())} out of "
                             f"range; allowed 0..{self.space_size - 1}")
        return self._encode(unpack_lsb(index, self.n_bits), index, features)

    def _encode(self, bits, keys, features) -> Examples:
        n, B, G = len(bits), self.n_bits, self.group_size
        popcount = bits.reshape(n, 4, G).sum(axis=2, dtype=np.int32)
        majority = (2 * popcount > G).astype(np.uint8)
        ids = np.empty((n, self.seq_len), dtype=np.uint8)
        ids[:, :B] = bits
        ids[:, B] = EQ_ID
        ids[:, B + 1] = majority.sum(axis=1) > 2
        ids[:, B + 2] = EOS_ID
        labels = {}
        if features:
            pos = _positions(G * np.arange(1, 5) - 1, n)
            labels["group_majority"] = FeatureLabels(pos, majority, "binary")
            labels["group_popcount"] = FeatureLabels(pos.copy(), popcount, "regression")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)
