"""Five extra bit tasks of the reference's data code: parity, majority, inner product mod 2,
binary sorting and repeated addition (../shared/reference/extra-tasks.md §1-3, §5, §11).

No published number depends on them. Vocabulary: the binary tasks' ("0", "1", "+", "=", "<EOS>").
The reference configures no size for any of them; our default sizes are our choice. Their probe
features are the spec's *proposals* (§0.6), not reference behaviour: the reference registers none.

Parity, majority and inner product read a 2L-bit row x_0..x_{2L-1} whose halves are
a = x_0..x_{L-1} and b = x_L..x_{2L-1} (bit j of a half is its 2^j coefficient). As in the
reference's split, the instance class is the unordered pair of halves {a, b}; the classes are
numbered as addition's operand pairs and the salt picks which half comes first. Every 2L-bit
string is reachable, so the space holds all 2^(2L) inputs ([FIX] of the reference's 2^L row cap).
"""
from __future__ import annotations

import math

import numpy as np

from .base import Examples, Feature, FeatureLabels, Task, loss_mask_from, random_below, \
    random_permutations
from .binary import BINARY_TOKENS, EOS_ID, EQ_ID, PLUS, Addition, _OperandPairTask, \
    _positions, unpack_lsb
from .sequence import SHUFFLE_STREAM, MultisetSpace
from .sequence_extra import remaining_values

_ONE_BIT_GUESS = math.log(2) / 3  # targets '=', y, EOS: only y is unknown (as majority_of_majority)


class _HalvesTask(_OperandPairTask):
    """Shared by parity, majority and inner product: classes are unordered pairs of L-bit halves."""

    default_size = 16
    equivalence = ("the unordered pair of halves {x_0..x_{L-1}, x_L..x_{2L-1}} (the reference's "
                   "split grouping): swapping the halves is the same instance")

    def encode_bits(self, bits, features: bool = True) -> Examples:
        """Encode explicit rows `bits` (n, 2L) of 0/1 in token order; keys = their classes."""
        bits = np.asarray(bits)
        L = self.size
        if bits.ndim != 2 or bits.shape[1] != 2 * L:
            raise ValueError(f"{self.name}-{L}: bits must have shape (n, {2 * L}), got "
                             f"{bits.shape}")
        if bits.size and (bits.dtype.kind not in "iub" or not np.isin(bits, (0, 1)).all()):
            raise ValueError(f"{self.name}: bits must be integers 0 or 1 (dtype {bits.dtype})")
        weights = np.uint64(1) << np.arange(L, dtype=np.uint64)
        halves = bits.astype(np.uint64).reshape(len(bits), 2, L) * weights
        return self.encode(halves[:, 0].sum(1, dtype=np.uint64),
                           halves[:, 1].sum(1, dtype=np.uint64), features)

    def random_guess_loss(self) -> float:
        return _ONE_BIT_GUESS

    def _bits_eq_answer(self, bits: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Token ids `x_0..x_{2L-1} = y <EOS>` (parity and majority)."""
        L = self.size
        ids = np.empty((len(bits), 2 * L + 3), dtype=np.uint8)
        ids[:, :2 * L] = bits
        ids[:, 2 * L] = EQ_ID
        ids[:, 2 * L + 1] = y
        ids[:, 2 * L + 2] = EOS_ID
        return ids


class Parity(_HalvesTask):
    """`x_0..x_{2L-1} = y <EOS>` with y = (number of ones) mod 2; T = 2L+3 (§1).

    Features (proposals): prefix_parity, the running XOR read at each input bit; answer_at_eq,
    the answer read at '=', the token that predicts it.
    """

    name = "parity"
    features = (
        Feature("prefix_parity", "binary",
                "row r = 0..2L-1: x_0 xor .. xor x_r; read at position r (the token x_r) "
                "[proposal, spec §1.5]"),
        Feature("answer_at_eq", "binary",
                "one row: the answer y; read at position 2L ('=', which predicts y) "
                "[proposal, spec §1.5]"),
    )

    @property
    def seq_len(self) -> int:
        return 2 * self.size + 3

    def _encode(self, a, b, keys, features) -> Examples:
        L, n = self.size, len(a)
        bits = np.concatenate([unpack_lsb(a, L), unpack_lsb(b, L)], axis=1)
        prefix = np.bitwise_xor.accumulate(bits, axis=1)
        y = prefix[:, -1]
        ids = self._bits_eq_answer(bits, y)
        labels = {}
        if features:
            labels["prefix_parity"] = FeatureLabels(_positions(np.arange(2 * L), n), prefix,
                                                    "binary")
            labels["answer_at_eq"] = FeatureLabels(_positions([2 * L], n), y[:, None].copy(),
                                                   "binary")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


class Majority(_HalvesTask):
    """`x_0..x_{2L-1} = y <EOS>` with y = 1 iff more than L of the 2L bits are ones (§2).

    A tie (exactly L ones) gives 0 [KEEP]: the reference's rule, though it skews the labels
    (P(y=1) ~ 0.43 at L = 16). Features (proposals): prefix_margin, the running count of ones
    minus zeros; is_tie at '='.
    """

    name = "majority"
    features = (
        Feature("prefix_margin", "regression",
                "row r = 0..2L-1: (#ones - #zeros) in x_0..x_r, in -(r+1)..r+1; read at "
                "position r (the token x_r) [proposal, spec §2.5]"),
        Feature("is_tie", "binary",
                "one row: 1 iff exactly L of the 2L bits are ones (the tie rule's input); read "
                "at position 2L ('=') [proposal, spec §2.5]"),
    )

    @property
    def seq_len(self) -> int:
        return 2 * self.size + 3

    def _encode(self, a, b, keys, features) -> Examples:
        L, n = self.size, len(a)
        bits = np.concatenate([unpack_lsb(a, L), unpack_lsb(b, L)], axis=1)
        ones = np.cumsum(bits, axis=1, dtype=np.int64)
        y = (ones[:, -1] > L).astype(np.uint8)  # strictly more than half: a tie is 0 [KEEP]
        ids = self._bits_eq_answer(bits, y)
        labels = {}
        if features:
            margin = 2 * ones - np.arange(1, 2 * L + 1)
            labels["prefix_margin"] = FeatureLabels(_positions(np.arange(2 * L), n), margin,
                                                    "regression")
            labels["is_tie"] = FeatureLabels(_positions([2 * L], n),
                                             (ones[:, -1:] == L).astype(np.uint8), "binary")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


class InnerProductMod2Parity(_HalvesTask):
    """`a_0..a_{L-1} + b_0..b_{L-1} = y <EOS>` with y = (sum_i a_i b_i) mod 2; T = 2L+4 (§3).

    The reference ignores the reversal flags; reversing both operands keeps y, so nothing is lost
    [KEEP]. Features (proposals), all read at the token b_i (position L+1+i):
    retrieve_first_op (a_i), pair_and (a_i and b_i), prefix_inner_parity (the running sum mod 2;
    its last row, at position 2L, equals y).
    """

    name = "inner_product_mod2_parity"
    equivalence = ("the unordered operand pair {a, b}: (a, b) and (b, a) are the same instance "
                   "(the answer is symmetric)")
    features = (
        Feature("retrieve_first_op", "binary",
                "row i = 0..L-1: a_i; read at position L+1+i (the token b_i) "
                "[proposal, spec §3.5]"),
        Feature("pair_and", "binary",
                "row i: a_i and b_i, the product term; read at position L+1+i "
                "[proposal, spec §3.5]"),
        Feature("prefix_inner_parity", "binary",
                "row i: (a_0 b_0 + .. + a_i b_i) mod 2; read at position L+1+i (row L-1 at 2L "
                "equals y) [proposal, spec §3.5]"),
    )

    @property
    def seq_len(self) -> int:
        return 2 * self.size + 4

    def _encode(self, a, b, keys, features) -> Examples:
        L, n = self.size, len(a)
        a_bits, b_bits = unpack_lsb(a, L), unpack_lsb(b, L)
        ids = self._prompt(a_bits, b_bits)  # a + b =
        products = a_bits & b_bits
        prefix = np.bitwise_xor.accumulate(products, axis=1)
        ids[:, 2 * L + 2] = prefix[:, -1]
        ids[:, 2 * L + 3] = EOS_ID
        labels = {}
        if features:
            pos = _positions(L + 1 + np.arange(L), n)
            labels["retrieve_first_op"] = FeatureLabels(pos, a_bits, "binary")
            labels["pair_and"] = FeatureLabels(pos.copy(), products, "binary")
            labels["prefix_inner_parity"] = FeatureLabels(pos.copy(), prefix, "binary")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


class BinarySorting(Task):
    """Sort L hexadecimal digits (nibbles), written in binary: `d_0 .. d_{L-1} = s_0 .. s_{L-1}
    <EOS>`, each nibble as 4 bits MSB-first, s the nibbles in ascending order; T = 8L+2 (§5).

    The reference could produce no data for this task; this is the spec's intended semantics
    [FIX]: a class is a multiset of L nibbles (uniform over multisets, numbered like the sequence
    tasks' multisets; [FIX] of the reference's key), shuffled by the salt, d_0 the most
    significant digit. Nothing here is LSB-first. Features (proposals): nibble_value at the
    nibble's last bit; remaining_set, the values still to emit, at the token that predicts each
    output nibble's first bit.
    """

    name = "binary_sorting"
    tokens = BINARY_TOKENS
    default_size = 8
    min_size = 1
    max_size = 32
    size_unit = "nibbles"
    equivalence = "the multiset of nibbles (it fixes the answer)"
    features = (
        Feature("nibble_value", "onehot",
                "row i = 0..L-1: the value d_i (16 classes); read at position 4i+3, the last "
                "bit of nibble i [proposal, spec §5.5]"),
        Feature("remaining_set", "multilabel",
                "row k = 0..L-1: the values (16) with a copy not yet emitted before output "
                "nibble k; read at position 4L+4k ('=' for k=0, else the last bit of output "
                "nibble k-1) [proposal, spec §5.5]"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.space = MultisetSpace(self.size, 16)

    @property
    def seq_len(self) -> int:
        return 8 * self.size + 2

    @property
    def space_size(self) -> int:
        return self.space.size

    def random_guess_loss(self) -> float:
        return 4 * self.size / (4 * self.size + 2) * math.log(2)  # 4L answer bits of 4L+2 targets

    def _generate(self, index, salt, features):
        values = self.space.unrank(index)
        order = random_permutations(salt, self.size, stream=SHUFFLE_STREAM)
        return self._encode(np.take_along_axis(values, order, axis=1).astype(np.int64), index,
                            features)

    def encode(self, nibbles, features: bool = True) -> Examples:
        """Encode explicit digit lists (n, L) of ints 0..15, d_0 first (most significant)."""
        nibbles = np.asarray(nibbles)
        if nibbles.ndim != 2 or nibbles.shape[1] != self.size:
            raise ValueError(f"{self.name}-{self.size}: nibbles must have shape "
                             f"(n, {self.size}), got {nibbles.shape}")
        if nibbles.size and (nibbles.dtype.kind not in "iu" or nibbles.min() < 0
                             or nibbles.max() > 15):
            raise ValueError(f"{self.name}: nibbles must be integers in 0..15")
        return self._encode(nibbles.astype(np.int64), self.space.rank(nibbles), features)

    def _encode(self, d, keys, features) -> Examples:
        n, L = d.shape
        msb_first = np.arange(3, -1, -1)
        s = np.sort(d, axis=1)
        ids = np.empty((n, self.seq_len), dtype=np.uint8)
        ids[:, :4 * L] = ((d[:, :, None] >> msb_first) & 1).reshape(n, 4 * L)
        ids[:, 4 * L] = EQ_ID
        ids[:, 4 * L + 1:8 * L + 1] = ((s[:, :, None] >> msb_first) & 1).reshape(n, 4 * L)
        ids[:, 8 * L + 1] = EOS_ID
        labels = {}
        if features:
            onehot = (d[:, :, None] == np.arange(16)).astype(np.uint8)
            labels["nibble_value"] = FeatureLabels(_positions(4 * np.arange(L) + 3, n), onehot,
                                                   "onehot")
            labels["remaining_set"] = FeatureLabels(_positions(4 * L + 4 * np.arange(L), n),
                                                    remaining_values(s), "multilabel")
        return Examples(ids, loss_mask_from(ids, EQ_ID, EOS_ID), np.asarray(keys, np.uint64),
                        labels)


class RepeatedAddition(Task):
    """k = 2 independent L-bit additions in one sequence, each `a + b = s <EOS>` as in addition
    (LSB-first, (L+1)-bit sum); segment s starts at o_s = s(3L+4), T = k(3L+4) (§11).

    The reference cannot produce this task (five crashes); this is the spec's intended semantics
    [FIX]. The size is L; k is fixed at `repetitions` = 2 (a subclass with another value is a new
    task). A class is the tuple of the segments' unordered operand pairs ({a_s, b_s}, numbered as
    addition's; class = p_0 + P p_1 with P pairs per segment), [FIX] of the reference's grouping
    at bit L. Every segment's '=' .. EOS is scored (spec §0.2). Features (proposals), per segment
    as addition's: carry (row sL+r at o_s+2L+2+r) and retrieve_first_op (row sL+r at o_s+2L+1+r).

    Two pipeline consequences of the spec's [FIX]es are outside this module: the context length
    should be T, not the first segment's 3L+4, and exact match should teacher-force the later
    segments' prompts (qlf's greedy decoder generates everything after the first '=').
    """

    name = "repeated_addition"
    tokens = BINARY_TOKENS
    repetitions = 2
    default_size = 8
    min_size = 1
    max_size = 16  # the class number P**2 must fit uint64: P = 2**L (2**L + 1) / 2
    size_unit = "bits"
    equivalence = ("the tuple of the segments' unordered operand pairs ({a_0, b_0}, {a_1, b_1}); "
                   "the segments' order matters")
    features = (
        Feature("carry", "binary",
                "row s*L+r: the carry out of column r of segment s's sum; read at position "
                "o_s+2L+2+r (sum bit r of segment s), o_s = s(3L+4) [proposal, spec §11.5]"),
        Feature("retrieve_first_op", "binary",
                "row s*L+r: bit r of a_s; read at position o_s+2L+1+r ('=' for r=0, else sum "
                "bit r-1 of segment s) [proposal, spec §11.5]"),
    )

    def __init__(self, size: int | None = None):
        super().__init__(size)
        self.pairs = Addition(self.size)  # one segment's operand-pair space
        if self.space_size >= 2**64:
            raise ValueError(f"{self.name}: {self.space_size} classes at size {self.size} "
                             f"exceed 2**64")

    @property
    def segment_len(self) -> int:
        return 3 * self.size + 4

    @property
    def seq_len(self) -> int:
        return self.repetitions * self.segment_len

    @property
    def space_size(self) -> int:
        return self.pairs.space_size ** self.repetitions

    def random_guess_loss(self) -> float:
        # per segment as addition: ln 2 on L+2 of its L+3 targets (qlf.scaling's convention)
        return (self.size + 2) / (self.size + 3) * math.log(2)

    def render(self, ids) -> str:
        """The whole sequence: every segment ends in an EOS, and there is no padding."""
        return "".join(self.tokens[i] for i in np.asarray(ids))

    def _generate(self, index, salt, features):
        P = np.uint64(self.pairs.space_size)
        swap = random_below(salt, 2, k=self.repetitions, stream=1).astype(bool)
        a, b, rest = [], [], np.asarray(index, dtype=np.uint64)
        for s in range(self.repetitions):
            lo, hi = self.pairs.unrank(rest % P)
            rest = rest // P
            a.append(np.where(swap[:, s], hi, lo))
            b.append(np.where(swap[:, s], lo, hi))
        return self._encode(np.stack(a, 1), np.stack(b, 1), index, features)

    def encode(self, a, b, features: bool = True) -> Examples:
        """Encode explicit operands a, b of shape (n, k): segment s is `a[:, s] + b[:, s]`."""
        a, b = np.asarray(a), np.asarray(b)
        k = self.repetitions
        if a.ndim != 2 or a.shape[1] != k or a.shape != b.shape:
            raise ValueError(f"{self.name}: a and b must both have shape (n, {k}), got "
                             f"{a.shape} and {b.shape}")
        cols = [self.pairs._check_operands(a[:, s], b[:, s]) for s in range(k)]
        P, keys = np.uint64(self.pairs.space_size), np.zeros(len(a), dtype=np.uint64)
        for s in reversed(range(k)):
            keys = keys * P + self.pairs.rank(*cols[s])
        return self._encode(np.stack([c[0] for c in cols], 1), np.stack([c[1] for c in cols], 1),
                            keys, features)

    def _encode(self, a, b, keys, features) -> Examples:
        L, n, k, W = self.size, len(a), self.repetitions, self.segment_len
        a, b = a.astype(np.uint64), b.astype(np.uint64)
        a_bits, b_bits = unpack_lsb(a, L), unpack_lsb(b, L)  # (n, k, L)
        sum_bits = unpack_lsb(a + b, L + 1)
        seg = np.empty((n, k, W), dtype=np.uint8)
        seg[:, :, :L] = a_bits
        seg[:, :, L] = PLUS
        seg[:, :, L + 1:2 * L + 1] = b_bits
        seg[:, :, 2 * L + 1] = EQ_ID
        seg[:, :, 2 * L + 2:3 * L + 3] = sum_bits
        seg[:, :, 3 * L + 3] = EOS_ID
        mask = np.zeros((n, k, W), dtype=np.uint8)
        mask[:, :, 2 * L + 1:] = 1  # each segment's '=' through its EOS
        labels = {}
        if features:
            offsets = W * np.arange(k)[:, None]
            carry = sum_bits[..., 1:] ^ np.pad(a_bits ^ b_bits, ((0, 0), (0, 0), (0, 1)))[..., 1:]
            labels["carry"] = FeatureLabels(
                _positions((offsets + 2 * L + 2 + np.arange(L)).ravel(), n),
                carry.reshape(n, k * L), "binary")
            labels["retrieve_first_op"] = FeatureLabels(
                _positions((offsets + 2 * L + 1 + np.arange(L)).ravel(), n),
                a_bits.reshape(n, k * L), "binary")
        return Examples(seg.reshape(n, k * W), mask.reshape(n, k * W),
                        np.asarray(keys, np.uint64), labels)
