"""Tests of the sequence tasks against independent Python implementations and worked examples."""
from collections import Counter
from itertools import combinations, combinations_with_replacement
from math import comb

import numpy as np
import pytest

from qlf.tasks import get_task
from qlf.tasks.sequence import ActivitySelection, MaximumSubarray, MultisetSpace

EQ_ID, EOS_ID = 19, 20


def uniform_classes(rng, space_size, n):
    return rng.integers(0, space_size, n, dtype=np.uint64)


def salts(rng, n):
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)


def first_eos_after(row, start):
    return start + list(row[start:]).index(EOS_ID)


def check_layout(task, ex, prompt_len):
    """'=' at prompt_len, EOS padding after the answer, loss mask from '=' through first EOS."""
    assert ex.ids.dtype == np.uint8 and ex.ids.shape[1] == task.seq_len
    assert (ex.ids[:, prompt_len] == EQ_ID).all()
    assert (ex.ids[:, :prompt_len] < 19).all()
    for row, mask in zip(ex.ids, ex.loss_mask):
        end = first_eos_after(row, prompt_len)
        assert (row[end:] == EOS_ID).all()
        assert (row[prompt_len + 1:end] < 19).all()
        expect = np.zeros(task.seq_len, np.uint8)
        expect[prompt_len:end + 1] = 1
        assert (mask == expect).all()


# -- maximum subarray -----------------------------------------------------------------------------

def brute_max_subarray(x):
    """Max-sum subarray by O(L^2) search; ties: smallest end, then smallest start."""
    best = None
    for e in range(len(x)):
        for s in range(e + 1):
            key = (-sum(x[s:e + 1]), e, s)
            best = key if best is None or key < best else best
    _, e, s = best
    return x[s:e + 1]


def brute_max_ending_here(x):
    return [max(sum(x[s:r + 1]) for s in range(r + 1)) for r in range(len(x))]


def answer_values(task, row):
    L = task.size
    end = first_eos_after(row, L + 1)
    return [int(t) - 9 for t in row[L + 1:end]]


def test_max_subarray_worked_example():
    task = MaximumSubarray(8)
    x = [3, -5, 2, -1, 4, -9, 9, -2]
    ex = task.encode(np.array([x]))
    expect = [12, 4, 11, 8, 13, 0, 18, 7, EQ_ID, 18] + [EOS_ID] * 8
    assert ex.ids[0].tolist() == expect
    f = ex.features["compute_prev_sign"]
    assert f.kind == "binary"
    assert f.positions[0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert f.labels[0].tolist() == [0, 1, 0, 1, 0, 1, 0]
    f = ex.features["intermediate_sums"]
    assert f.kind == "regression"
    assert f.positions[0].tolist() == list(range(1, 9))
    assert f.labels[0].tolist() == [0, -2, 2, 1, 5, -4, 9, 7]
    assert ex.loss_mask[0].tolist() == [0] * 8 + [1, 1, 1] + [0] * 7
    assert task.render(ex.ids[0]) == "MELINASH=S<EOS>"


@pytest.mark.parametrize("x, answer", [
    ([0, 0, 0], [0]),                 # all ties: the first element
    ([-3, -1, -2, -1], [-1]),         # all negative: the first largest
    ([1, -1, 1], [1]),                # [1], [1,-1,1], [1] tie: smallest end
    ([0, 1], [0, 1]),                 # zero prefix kept: smallest start for that end
    ([-1, 0, 1], [0, 1]),
    ([2, -2, 0, 3], [2, -2, 0, 3]),   # run continues through meh == 0
    ([2, -3, 0, 3], [0, 3]),          # reset after meh < 0
])
def test_max_subarray_tie_cases(x, answer):
    ex = MaximumSubarray(len(x)).encode(np.array([x]))
    assert answer_values(MaximumSubarray(len(x)), ex.ids[0]) == answer
    assert brute_max_subarray(x) == answer


@pytest.mark.parametrize("low, high", [(-9, 9), (-2, 2), (-1, 1)])
def test_max_subarray_matches_brute_force(low, high):
    rng = np.random.default_rng(high)
    for L in (1, 2, 5, 13):
        task = MaximumSubarray(L)
        x = rng.integers(low, high + 1, (300, L))
        ex = task.encode(x)
        check_layout(task, ex, L)
        sums = ex.features["intermediate_sums"]
        signs = ex.features["compute_prev_sign"]
        for i, row in enumerate(x.tolist()):
            assert answer_values(task, ex.ids[i]) == brute_max_subarray(row)
            assert sums.labels[i].tolist() == [0] + brute_max_ending_here(row)[1:]
            assert signs.labels[i].tolist() == [int(v < 0) for v in row[:-1]]
        assert (ex.ids[:, :L] == x + 9).all()


def test_max_subarray_generate_features_and_keys():
    task = MaximumSubarray()
    rng = np.random.default_rng(1)
    index = uniform_classes(rng, task.space_size, 200)
    ex = task.generate(index, salts(rng, 200))
    L = task.size
    assert task.seq_len == 130 and task.vocab_size == 21
    assert (ex.keys == index).all()
    check_layout(task, ex, L)
    x = ex.ids[:, :L].astype(np.int64) - 9
    # the encoded sequence is a shuffle of the class's multiset
    assert (np.sort(x, axis=1) == task.space.unrank(index) - 9).all()
    assert (task.encode(x).ids == ex.ids).all()
    assert (task.encode(x).keys == index).all()
    signs, sums = ex.features["compute_prev_sign"], ex.features["intermediate_sums"]
    assert signs.positions.shape == (200, L - 1) and sums.positions.shape == (200, L)
    assert (signs.positions == np.arange(1, L)).all()
    assert (sums.positions == np.arange(1, L + 1)).all()
    for i in range(0, 200, 20):
        row = x[i].tolist()
        assert sums.labels[i].tolist() == [0] + brute_max_ending_here(row)[1:]
        assert answer_values(task, ex.ids[i]) == brute_max_subarray(row)
    assert task.generate(index, salts(rng, 200), features=False).features == {}
    assert {f.name for f in task.features} == set(ex.features)
    for f in task.features:
        assert ex.features[f.name].kind == f.kind


# -- activity selection ---------------------------------------------------------------------------

def python_greedy(starts, ends):
    order = sorted(range(len(starts)), key=lambda i: ends[i])  # Python's sort is stable
    chosen, last = [], 0
    for i in order:
        if starts[i] >= last:
            chosen.append(i)
            last = ends[i]
    return chosen


def compatible(starts, ends, subset):
    spans = sorted((starts[i], ends[i]) for i in subset)
    return all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def max_compatible_size(starts, ends):
    L = len(starts)
    for size in range(L, 0, -1):
        if any(compatible(starts, ends, c) for c in combinations(range(L), size)):
            return size
    return 0


def answer_pairs(task, row):
    L = task.size
    end = first_eos_after(row, 2 * L + 1)
    vals = [int(t) for t in row[2 * L + 1:end]]
    assert len(vals) % 2 == 0
    return list(zip(vals[::2], vals[1::2]))


def test_activity_worked_example():
    task = ActivitySelection(4)
    ex = task.encode(np.array([[1, 3, 2, 5]]), np.array([[2, 1, 4, 3]]))
    assert ex.ids[0].tolist() == [1, 3, 2, 5, 3, 4, 6, 8, EQ_ID, 1, 3, 3, 4, 5, 8, EOS_ID,
                                  EOS_ID, EOS_ID]
    f = ex.features["retrieve_start_times"]
    assert f.kind == "regression"
    assert f.positions[0].tolist() == [4, 5, 6, 7]
    assert ex.ids[0, f.positions[0]].tolist() == [3, 4, 6, 8]
    assert f.labels[0].tolist() == [1, 3, 2, 5]
    assert ex.loss_mask[0].tolist() == [0] * 8 + [1] * 8 + [0, 0]


def test_activity_ties_broken_by_index():
    # activities 0 and 1 both end at 5: the stable sort keeps activity 0 (start 3)
    ex = ActivitySelection(2).encode(np.array([[3, 1]]), np.array([[2, 4]]))
    assert answer_pairs(ActivitySelection(2), ex.ids[0]) == [(3, 5)]
    ex = ActivitySelection(2).encode(np.array([[1, 3]]), np.array([[4, 2]]))
    assert answer_pairs(ActivitySelection(2), ex.ids[0]) == [(1, 5)]


@pytest.mark.parametrize("L", [1, 3, 6, 8])
def test_activity_matches_greedy_and_is_maximum(L):
    task = ActivitySelection(L)
    rng = np.random.default_rng(L)
    n = 150 if L == 8 else 300
    starts = rng.integers(1, 10, (n, L))
    durations = rng.integers(1, 10, (n, L))
    # squeeze some rows into few values so that ties in end times are common
    starts[: n // 3] = rng.integers(1, 3, (n // 3, L))
    durations[: n // 3] = rng.integers(1, 3, (n // 3, L))
    ex = task.encode(starts, durations)
    check_layout(task, ex, 2 * L)
    assert (ex.ids[:, :L] == starts).all() and (ex.ids[:, L:2 * L] == starts + durations).all()
    for i in range(n):
        s, e = starts[i].tolist(), (starts[i] + durations[i]).tolist()
        pairs = answer_pairs(task, ex.ids[i])
        assert pairs == [(s[j], e[j]) for j in python_greedy(s, e)]
        assert len(pairs) == max_compatible_size(s, e)
        ends = [b for _, b in pairs]
        assert ends == sorted(ends)
    f = ex.features["retrieve_start_times"]
    assert (f.labels == starts).all() and (f.positions == np.arange(L, 2 * L)).all()


def test_activity_generate_keys_and_shuffle():
    task = ActivitySelection()
    rng = np.random.default_rng(2)
    index = uniform_classes(rng, task.space_size, 300)
    ex = task.generate(index, salts(rng, 300))
    L = task.size
    assert task.seq_len == 66 and (ex.keys == index).all()
    check_layout(task, ex, 2 * L)
    starts = ex.ids[:, :L].astype(np.int64)
    durations = ex.ids[:, L:2 * L].astype(np.int64) - starts
    values = np.sort(np.concatenate([starts, durations], axis=1), axis=1)
    assert (values == task.space.unrank(index) + 1).all()
    again = task.encode(starts, durations)
    assert (again.ids == ex.ids).all() and (again.keys == index).all()
    for i in range(0, 300, 30):
        s, e = starts[i].tolist(), (starts[i] + durations[i]).tolist()
        assert answer_pairs(task, ex.ids[i]) == [(s[j], e[j]) for j in python_greedy(s, e)]


# -- instance space -------------------------------------------------------------------------------

@pytest.mark.parametrize("n_items, n_kinds", [(1, 19), (2, 19), (3, 19), (2, 9), (4, 9), (6, 9),
                                               (5, 2), (1, 2)])
def test_unrank_is_a_bijection(n_items, n_kinds):
    space = MultisetSpace(n_items, n_kinds)
    assert space.size == comb(n_items + n_kinds - 1, n_kinds - 1)
    index = np.arange(space.size, dtype=np.uint64)
    values = space.unrank(index)
    assert values.shape == (space.size, n_items)
    assert (np.diff(values.astype(int), axis=1) >= 0).all()
    expected = set(combinations_with_replacement(range(n_kinds), n_items))
    got = {tuple(v) for v in values.tolist()}
    assert len(got) == space.size and got == expected
    assert (space.rank(values) == index).all()
    shuffled = np.random.default_rng(0).permuted(values, axis=1)
    assert (space.rank(shuffled) == index).all()


@pytest.mark.parametrize("cls, size", [(MaximumSubarray, 76), (MaximumSubarray, 64),
                                       (ActivitySelection, 64), (ActivitySelection, 16)])
def test_rank_round_trip_at_large_sizes(cls, size):
    task = cls(size)
    space = task.space
    rng = np.random.default_rng(size)
    index = np.concatenate([uniform_classes(rng, task.space_size, 500),
                            np.array([0, 1, task.space_size - 2, task.space_size - 1],
                                     dtype=np.uint64)])
    values = space.unrank(index)
    assert (space.rank(values) == index).all()
    # colex extremes: class 0 is all of the largest kind, the last class all of the smallest
    assert (values[-4] == space.n_kinds - 1).all() and (values[-1] == 0).all()
    counts = Counter(tuple(v) for v in values[:500].tolist())
    assert len(counts) == 500


def test_sizes_and_spaces():
    assert MaximumSubarray.max_size == max(L for L in range(1, 200) if comb(L + 18, 18) < 2**63)
    assert MaximumSubarray(64).space_size == comb(82, 18)
    assert ActivitySelection(16).space_size == comb(40, 8)
    assert comb(2 * 64 + 8, 8) < 2**63
    assert isinstance(get_task("maximum_subarray"), MaximumSubarray)
    assert get_task("maximum_subarray").size == 64 and get_task("activity_selection").size == 16
    for cls, bad in [(MaximumSubarray, 0), (MaximumSubarray, 77), (ActivitySelection, 0),
                     (ActivitySelection, 65)]:
        with pytest.raises(ValueError, match="out of range"):
            cls(bad)


def test_bad_inputs_raise():
    ms, act = MaximumSubarray(4), ActivitySelection(3)
    with pytest.raises(ValueError, match=r"\[-9, 9\]"):
        ms.encode(np.array([[0, 10, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        ms.encode(np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="integers"):
        ms.encode(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[1, 9\]"):
        act.encode(np.ones((1, 3), int), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="rows"):
        act.encode(np.ones((1, 3), int), np.ones((2, 3), int))
    with pytest.raises(ValueError, match="out of range"):
        ms.generate(np.array([ms.space_size], dtype=np.uint64), np.zeros(1, np.uint64))


# -- sampling -------------------------------------------------------------------------------------

def chi_square(counts, n_cells):
    total = sum(counts.values())
    expect = total / n_cells
    return sum((counts.get(c, 0) - expect) ** 2 / expect for c in range(n_cells))


def test_uniform_class_numbers_give_uniform_multisets():
    task = MaximumSubarray(2)  # 190 multisets
    rng = np.random.default_rng(3)
    n = 190 * 200
    ex = task.generate(uniform_classes(rng, task.space_size, n), salts(rng, n), features=False)
    multisets = [tuple(sorted(r)) for r in ex.ids[:, :2].tolist()]
    cell = {m: i for i, m in enumerate(sorted(set(combinations_with_replacement(range(19), 2))))}
    counts = Counter(cell[m] for m in multisets)
    # df = 189: mean 189, sd ~19.4; 6 sd above is far out of reach for a uniform sampler
    assert len(counts) == 190 and chi_square(counts, 190) < 189 + 6 * 19.4
    # uniform over multisets, not i.i.d. values: P(equal pair) = 19/190, not 19/361
    equal = np.mean([a == b for a, b in multisets])
    assert abs(equal - 0.1) < 0.01


def test_salt_shuffles_uniformly_within_a_class():
    task = ActivitySelection(2)
    values = np.array([[1, 1, 4, 7]])
    index = np.repeat(task.space.rank(values - 1), 12000)
    ex = task.generate(index, salts(np.random.default_rng(4), 12000), features=False)
    starts = ex.ids[:, :2].astype(int)
    arrangement = np.concatenate([starts, ex.ids[:, 2:4] - starts], axis=1)
    cells = {a: i for i, a in enumerate(sorted({tuple(r) for r in arrangement.tolist()}))}
    assert len(cells) == 12  # 4! / 2! distinct orders of {1, 1, 4, 7}
    counts = Counter(cells[tuple(r)] for r in arrangement.tolist())
    assert chi_square(counts, 12) < 11 + 6 * 4.7  # df = 11
    same = task.generate(index[:50], salts(np.random.default_rng(4), 50), features=False)
    assert (same.ids == ex.ids[:50]).all()  # same (index, salt) -> same bytes


@pytest.mark.parametrize("name, reference", [("activity_selection", 40.2),
                                             ("maximum_subarray", 93.2)])
def test_mean_unpadded_length_matches_reference(name, reference):
    task = get_task(name)
    rng = np.random.default_rng(5)
    n = 4000
    ex = task.generate(uniform_classes(rng, task.space_size, n), salts(rng, n), features=False)
    length = (np.argmax(ex.loss_mask, axis=1) + ex.loss_mask.sum(axis=1)).astype(float)
    # the reference value is the mean of only 128 draws (pipeline.md §2.2): allow 3 standard
    # errors of that estimate plus 3 of ours
    tolerance = 3 * length.std() * (1 / np.sqrt(128) + 1 / np.sqrt(n))
    assert abs(length.mean() - reference) < tolerance, (length.mean(), tolerance)
