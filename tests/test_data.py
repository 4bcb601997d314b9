"""The data layer: permutation, disjoint splits, never-repeating training stream, determinism."""
import numpy as np
import pytest

from qlf.data import SPLITS, Layout, Permutation, Stream
from qlf.tasks import get_task
from qlf.tasks.base import Examples, Feature, Task


class Counter(Task):
    """A toy task whose single token pair spells the class number: makes data tests independent
    of any real task."""

    name = "counter"
    tokens = tuple(str(i) for i in range(16)) + ("=", "<EOS>")
    default_size, min_size, max_size, size_unit = 8, 1, 16, "bits"
    equivalence = "the number itself"
    features = (Feature("low_bit", "binary", "bit 0 of the number, read at the '=' token"),)

    @property
    def seq_len(self):
        return 4 + self.size

    @property
    def space_size(self):
        return 2 ** self.size

    def _generate(self, index, salt, features):
        n = len(index)
        bits = ((index[:, None] >> np.arange(self.size, dtype=np.uint64)) & np.uint64(1))
        ids = np.full((n, self.seq_len), self.eos_id, dtype=np.uint8)
        ids[:, : self.size] = bits
        ids[:, self.size] = self.eq_id
        ids[:, self.size + 1] = (salt % np.uint64(16)).astype(np.uint8)
        mask = np.zeros_like(ids)
        mask[:, self.size: self.size + 3] = 1
        from qlf.tasks.base import FeatureLabels
        feats = {}
        if features:
            feats["low_bit"] = FeatureLabels(np.full((n, 1), self.size, np.int32),
                                             bits[:, :1].astype(np.uint8), "binary")
        return Examples(ids, mask, index.copy(), feats)


def decode_counter(ex):
    bits = ex.ids[:, :8].astype(np.uint64)
    return (bits << np.arange(8, dtype=np.uint64)).sum(axis=1)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 100, 1000, 4096, 65537, 2**20 + 3])
def test_permutation_is_a_bijection(size):
    values = Permutation(size, key=99)(np.arange(size, dtype=np.uint64))
    assert np.array_equal(np.sort(values), np.arange(size, dtype=np.uint64))


def test_permutation_depends_on_key_and_is_deterministic():
    x = np.arange(1000, dtype=np.uint64)
    a, b, c = Permutation(10**6, 1)(x), Permutation(10**6, 1)(x), Permutation(10**6, 2)(x)
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.99


def test_permutation_handles_64_bit_spaces():
    p = Permutation(2**64, key=3)
    v = p(np.arange(10000, dtype=np.uint64))
    assert len(np.unique(v)) == 10000
    q = Permutation(2**63 + 2**31, key=3)
    w = q(np.arange(10000, dtype=np.uint64))
    assert len(np.unique(w)) == 10000 and (w < np.uint64(2**63 + 2**31)).all()
    # the high half of the 64-bit domain is used too (no truncation to 63 bits)
    assert (v >= np.uint64(2**63)).mean() == pytest.approx(0.5, abs=0.03)


def test_permutation_positions_look_uniform():
    # positions 0..n-1 of a permutation of a large space should be spread evenly
    size = 10**7
    v = Permutation(size, 5)(np.arange(100000, dtype=np.uint64)).astype(np.float64) / size
    hist = np.histogram(v, bins=20, range=(0, 1))[0]
    expected = 100000 / 20
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 60  # chi-square with 19 dof: p ~ 1e-5 at 45


def test_splits_are_disjoint_and_cover_the_space():
    task = Counter(8)
    layout = Layout(10, 20, 30, 40)
    s = Stream(task, seed=3, layout=layout)
    seen = []
    for split in SPLITS[:-1]:
        ex = s.examples(split)
        assert len(ex) == getattr(layout, "n_" + split)
        seen.append(ex.keys)
    seen.append(s.examples("train", 0, 256 - 100).keys)
    allkeys = np.concatenate(seen)
    assert np.array_equal(np.sort(allkeys), np.arange(256, dtype=np.uint64))
    # keys are what the tokens spell
    ex = s.examples("val")
    assert np.array_equal(decode_counter(ex), ex.keys)


def test_train_batches_resume_and_never_repeat():
    task = Counter(12)
    s = Stream(task, seed=1, layout=Layout(50, 50, 100, 100))
    it = s.train_batches(32, chunk=256)
    batches = [next(it) for _ in range(40)]
    keys = np.concatenate([b.keys for b in batches])
    assert len(np.unique(keys)) == len(keys) == 40 * 32
    held = np.concatenate([s.examples(sp).keys for sp in SPLITS[:-1]])
    assert not np.isin(keys, held).any()
    # resuming at example 17*32 gives the same batches
    it2 = s.train_batches(32, start_example=17 * 32, chunk=1000)
    for b in batches[17:]:
        r = next(it2)
        assert np.array_equal(r.ids, b.ids) and np.array_equal(r.loss_mask, b.loss_mask)


def test_same_seed_same_bytes_other_seed_other_data():
    task = Counter(12)
    a = Stream(task, 7, Layout(100, 100, 0, 0)).examples("val")
    b = Stream(Counter(12), 7, Layout(100, 100, 0, 0)).examples("val")
    c = Stream(task, 8, Layout(100, 100, 0, 0)).examples("val")
    assert a.ids.tobytes() == b.ids.tobytes()
    assert (a.keys != c.keys).mean() > 0.9


def test_salt_is_a_function_of_the_class():
    # the in-class choices (here the token after '=') do not depend on where a class is drawn
    task = Counter(6)
    s = Stream(task, 2, Layout(0, 0, 0, 0))
    whole = s.examples("train", 0, 64)
    part = s.examples("train", 10, 5)
    assert np.array_equal(whole.ids[10:15], part.ids)


def test_exhaustion_and_oversized_layout_raise():
    task = Counter(4)  # 16 instances
    with pytest.raises(ValueError, match="only 16 distinct instances"):
        Stream(task, 0, Layout(10, 10, 0, 0))
    s = Stream(task, 0, Layout(4, 4, 0, 0))
    with pytest.raises(ValueError, match="holds 8 distinct"):
        s.examples("train", 0, 9)
    it = s.train_batches(4)
    next(it), next(it)
    with pytest.raises(ValueError, match="exhausted"):
        next(it)
    with pytest.raises(ValueError, match="unknown split"):
        s.examples("dev")


def test_features_are_sliced_with_batches():
    s = Stream(Counter(8), 0, Layout(0, 0, 0, 0))
    b = next(s.train_batches(16, features=True))
    assert b.features["low_bit"].labels.shape == (16, 1)
    assert np.array_equal(b.features["low_bit"].labels[:, 0], (b.keys & np.uint64(1)).astype(np.uint8))


# -- with real tasks: disjointness under each task's own equivalence ------------------------------

def _addition_classes(ex, L):
    w = 2 ** np.arange(L, dtype=np.uint64)
    a = (ex.ids[:, :L].astype(np.uint64) * w).sum(1)
    b = (ex.ids[:, L + 1: 2 * L + 1].astype(np.uint64) * w).sum(1)
    return np.minimum(a, b) * np.uint64(2 ** L) + np.maximum(a, b)


@pytest.mark.parametrize("L", [5, 16])
def test_addition_splits_disjoint_as_unordered_pairs(L):
    task = get_task("addition", L)
    layout = Layout(60, 60, 100, 40) if L == 5 else Layout()
    s = Stream(task, 0, layout)
    n_train = 200 if L == 5 else 20000
    parts = [s.examples(sp, features=False) for sp in SPLITS[:-1]]
    parts.append(s.examples("train", 0, n_train, features=False))
    classes = np.concatenate([_addition_classes(p, L) for p in parts])
    assert len(np.unique(classes)) == len(classes)


def test_sequence_splits_disjoint_as_multisets():
    task = get_task("activity_selection", 2)  # multisets of 4 values from 9: C(12,8)=495
    s = Stream(task, 4, Layout(50, 50, 100, 100))
    ex = np.concatenate([s.examples(sp, features=False).ids for sp in SPLITS[:-1]] +
                        [s.examples("train", 0, 195, features=False).ids])
    # multiset of (starts, durations) values: ends minus starts are the durations
    starts, ends = ex[:, :2].astype(int), ex[:, 2:4].astype(int)
    multisets = {tuple(sorted(list(s_) + list(e_ - s_))) for s_, e_ in zip(starts, ends)}
    assert len(multisets) == len(ex) == 495
