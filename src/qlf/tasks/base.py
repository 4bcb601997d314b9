"""The contract every task meets: vocabulary, fixed token layout, instance space, features.

A task object is bound to one size (bits, values or nodes). Its instances form a finite space of
equivalence classes (unordered operand pairs, multisets, graph isomorphism classes), numbered
0 .. space_size-1. `generate(index, salt)` turns class numbers into token sequences, and the same
pass that writes the answer tokens records every feature label (DESIGN.md: one algorithm run,
answer and hints together). `salt` is a per-example 64-bit random value for the choices made
inside a class (operand order, element shuffle, vertex relabelling, start node), so a class and
a seed always give the same bytes.

Everything is vectorised numpy over a batch of examples; tasks never import torch.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

KINDS = ("binary", "multilabel", "onehot", "regression")
EQ, EOS = "=", "<EOS>"


@dataclass(frozen=True)
class Feature:
    """Declaration of one probed feature (the CLRS-style spec, as data).

    kind: binary (0/1 per row), multilabel (K independent 0/1 outputs per row), onehot (exactly
    one of K per row), regression (one integer/real per row).
    doc: what the label is, and which token's residual stream reads it.
    """

    name: str
    kind: str
    doc: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name!r}: kind {self.kind!r} not in {KINDS}")


@dataclass
class FeatureLabels:
    """Labels of one feature for a batch of n examples, R rows per example.

    positions: int32 (n, R) absolute token position whose residual vector is paired with row r,
               -1 where row r does not exist for that example (ragged answers, fewer edges).
    labels:    (n, R) for binary/regression, (n, R, K) for multilabel/onehot. Values in rows
               whose position is -1 are meaningless (zero).
    """

    positions: np.ndarray
    labels: np.ndarray
    kind: str


@dataclass
class Examples:
    """A batch of encoded examples.

    ids:       uint8 (n, T) token ids, EOS-padded to the task's fixed length T.
    loss_mask: uint8 (n, T) 1 from the '=' token through the first EOS (inclusive), else 0.
    keys:      uint64 (n,) class number of each example in the task's instance space; two
               examples are equivalent iff their keys are equal.
    features:  name -> FeatureLabels (empty when generated with features=False).
    """

    ids: np.ndarray
    loss_mask: np.ndarray
    keys: np.ndarray
    features: dict[str, FeatureLabels] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


class Task(ABC):
    """One algorithmic task at one size. Subclasses set the class attributes and implement
    `seq_len`, `space_size` and `_generate`."""

    name: ClassVar[str]
    tokens: ClassVar[tuple[str, ...]]  # tokens[-2] is '=', tokens[-1] is EOS
    default_size: ClassVar[int]
    min_size: ClassVar[int]
    max_size: ClassVar[int]
    size_unit: ClassVar[str]  # "bits", "values", "activities", "nodes"
    equivalence: ClassVar[str]  # what makes two instances the same (for disjoint splits)
    features: ClassVar[tuple[Feature, ...]]

    def __init__(self, size: int | None = None):
        size = self.default_size if size is None else int(size)
        if not self.min_size <= size <= self.max_size:
            raise ValueError(
                f"{self.name}: size {size} out of range; allowed {self.min_size}..{self.max_size} "
                f"{self.size_unit}")
        self._check_size(size)
        self.size = size

    def _check_size(self, size: int) -> None:
        """Extra size constraints (e.g. divisibility); raise ValueError."""

    # -- vocabulary -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def eq_id(self) -> int:
        return self.vocab_size - 2

    @property
    def eos_id(self) -> int:
        return self.vocab_size - 1

    def random_guess_loss(self) -> float:
        """Validation loss of a guesser that knows the answer format (qlf.scaling's baseline).

        Default: uniform over every token but '=' at each scored target, ln(vocab_size - 1), the
        reference's rule for its variable-length answers (ln 20, ln 27). Tasks whose format
        fixes some targets override it (e.g. a one-bit answer: ln 2 on 1 of 3 targets)."""
        return math.log(self.vocab_size - 1)

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise ValueError(f"{self.name} has no feature {name!r}; it has "
                         f"{[f.name for f in self.features]}")

    # -- layout and space -------------------------------------------------------------------
    @property
    @abstractmethod
    def seq_len(self) -> int:
        """Fixed (EOS-padded) token length of every example."""

    @property
    @abstractmethod
    def space_size(self) -> int:
        """Number of equivalence classes of instances (a Python int, may exceed 2**63)."""

    def generate(self, index: np.ndarray, salt: np.ndarray, features: bool = True) -> Examples:
        """Encode the classes `index` (uint64, each < space_size) with per-example `salt`."""
        index = np.asarray(index, dtype=np.uint64)
        salt = np.asarray(salt, dtype=np.uint64)
        if index.shape != salt.shape or index.ndim != 1:
            raise ValueError("index and salt must be 1-D arrays of the same length")
        ex = self._generate(index, salt, features)
        assert ex.ids.shape == (len(index), self.seq_len), (self.name, ex.ids.shape)
        return ex

    @abstractmethod
    def _generate(self, index: np.ndarray, salt: np.ndarray, features: bool) -> Examples:
        ...

    def render(self, ids: np.ndarray) -> str:
        """One sequence as text, e.g. '0110+1011=10001<EOS>' (padding EOS tokens dropped)."""
        ids = list(np.asarray(ids))
        eq = ids.index(self.eq_id) if self.eq_id in ids else len(ids)
        try:
            end = ids.index(self.eos_id, eq) + 1
        except ValueError:
            end = len(ids)
        return "".join(self.tokens[i] for i in ids[:end])


# -- shared helpers for subclasses ----------------------------------------------------------------

def loss_mask_from(ids: np.ndarray, eq_id: int, eos_id: int) -> np.ndarray:
    """1 from the first '=' through the first EOS after it, inclusive (vectorised)."""
    t = np.arange(ids.shape[1])
    eq = np.argmax(ids == eq_id, axis=1)
    after = (ids == eos_id) & (t[None, :] > eq[:, None])
    eos = np.argmax(after, axis=1)
    return ((t[None, :] >= eq[:, None]) & (t[None, :] <= eos[:, None])).astype(np.uint8)


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective 64-bit mixer (numpy uint64 arithmetic wraps)."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):  # numpy warns on wrapping scalar (0-d) products
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def random_u64(salt: np.ndarray, k: int, stream: int = 0) -> np.ndarray:
    """(n, k) independent uint64 random words derived from per-example salts.

    `stream` separates independent uses of the same salt (e.g. 1 = shuffle, 2 = start node).
    """
    salt = np.asarray(salt, dtype=np.uint64)
    offset = np.uint64((stream + 1) * int(_GOLDEN) % 2**64)
    j = mix64(np.arange(k, dtype=np.uint64) + offset)
    return mix64(salt[:, None] ^ j[None, :])


def random_below(salt: np.ndarray, bound, k: int = 1, stream: int = 0) -> np.ndarray:
    """(n, k) int64 uniform in [0, bound) (bound scalar or (n,1)/(n,k) array, at most 2**53)."""
    u = random_u64(salt, k, stream) >> np.uint64(11)  # 53 random bits
    return np.floor(u.astype(np.float64) * (np.asarray(bound, dtype=np.float64) / 2.0**53)
                    ).astype(np.int64)


def random_permutations(salt: np.ndarray, m: int, stream: int = 0) -> np.ndarray:
    """(n, m) int64: one uniformly random permutation of 0..m-1 per example."""
    return np.argsort(random_u64(salt, m, stream), axis=1, kind="stable")
