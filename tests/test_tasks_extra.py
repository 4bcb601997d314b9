"""The seven non-graph extra tasks (reference/extra-tasks.md §1-6, §11): the spec's worked
examples as exact vectors, and answers, feature labels, positions and instance classes against
plain-Python references (ints, strings, brute force over subsequences)."""
import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest

from qlf.data import Layout, Stream
from qlf.tasks import get_task

EXTRA = ["parity", "majority", "inner_product_mod2_parity", "sorting", "binary_sorting",
         "longest_common_subsequence", "repeated_addition"]


def all_classes(task, salt_seed=0):
    """Every class once, with a random salt each."""
    rng = random.Random(salt_seed)
    index = np.arange(task.space_size, dtype=np.uint64)
    return index, np.array([rng.getrandbits(64) for _ in index], dtype=np.uint64)


def some_classes(task, n, seed):
    rng = random.Random(seed)
    ks = [rng.randrange(task.space_size) for _ in range(n)] + [0, task.space_size - 1]
    return (np.array(ks, dtype=np.uint64),
            np.array([rng.getrandbits(64) for _ in ks], dtype=np.uint64))


def labels_at(ex, name, i):
    """(positions, labels) of example i's present rows of a feature, as Python lists."""
    fl = ex.features[name]
    keep = fl.positions[i] >= 0
    return fl.positions[i][keep].tolist(), fl.labels[i][keep].tolist()


def mask_span(T, lo, hi):
    return [1 if lo <= t <= hi else 0 for t in range(T)]


# -- worked examples (exact vectors of the spec) ----------------------------------------------

def test_parity_worked_example():  # §1.6
    task = get_task("parity", 2)
    ex = task.encode_bits([[1, 0, 1, 1]])
    assert ex.ids.tolist() == [[1, 0, 1, 1, 3, 1, 4]] and task.seq_len == 7
    assert ex.loss_mask.tolist() == [mask_span(7, 4, 6)]
    assert labels_at(ex, "prefix_parity", 0) == ([0, 1, 2, 3], [1, 1, 0, 1])
    assert labels_at(ex, "answer_at_eq", 0) == ([4], [1])


def test_majority_worked_examples_and_the_tie():  # §2.6
    task = get_task("majority", 2)
    ex = task.encode_bits([[1, 0, 1, 0], [1, 1, 0, 1]])
    assert ex.ids.tolist() == [[1, 0, 1, 0, 3, 0, 4], [1, 1, 0, 1, 3, 1, 4]]
    assert labels_at(ex, "is_tie", 0) == ([4], [1]) and labels_at(ex, "is_tie", 1) == ([4], [0])
    assert labels_at(ex, "prefix_margin", 0) == ([0, 1, 2, 3], [1, 0, 1, 0])


def test_inner_product_worked_example():  # §3.6
    task = get_task("inner_product_mod2_parity", 3)
    ex = task.encode_bits([[1, 0, 1, 0, 1, 1]])
    assert ex.ids.tolist() == [[1, 0, 1, 2, 0, 1, 1, 3, 1, 4]]
    assert ex.loss_mask.tolist() == [mask_span(10, 7, 9)]
    assert labels_at(ex, "retrieve_first_op", 0) == ([4, 5, 6], [1, 0, 1])
    assert labels_at(ex, "pair_and", 0) == ([4, 5, 6], [0, 0, 1])
    assert labels_at(ex, "prefix_inner_parity", 0) == ([4, 5, 6], [0, 0, 1])


def test_sorting_worked_example_with_the_fixes():  # §4.6: numeric order, EOS-padded to 6L
    task = get_task("sorting", 4)
    ex = task.encode([[3, 15, 0, 10]])
    assert ex.ids.tolist() == [[3, 10, 1, 5, 10, 0, 10, 1, 0, 11, 0, 10, 3, 10, 1, 0, 10, 1, 5,
                                12, 12, 12, 12, 12]]
    assert task.seq_len == 24 and task.render(ex.ids[0]) == "3,15,0,10=0,3,10,15<EOS>"
    assert ex.loss_mask.tolist() == [mask_span(24, 9, 19)]  # '=' at 9, first EOS at 19
    # ranks of 3, 15, 0, 10 at their last digits; remaining values at '=' and each ','
    assert labels_at(ex, "input_rank", 0) == ([0, 3, 5, 8], [1, 3, 0, 2])
    pos, rows = labels_at(ex, "remaining_set", 0)
    assert pos == [9, 11, 13, 16]
    assert [set(np.flatnonzero(r)) for r in rows] == [{0, 3, 10, 15}, {3, 10, 15}, {10, 15},
                                                      {15}]


def test_binary_sorting_worked_example():  # §5.6
    task = get_task("binary_sorting", 2)
    ex = task.encode([[0xA, 0x3]])
    assert ex.ids.tolist() == [[1, 0, 1, 0, 0, 0, 1, 1, 3, 0, 0, 1, 1, 1, 0, 1, 0, 4]]
    assert task.seq_len == 18 and ex.loss_mask.tolist() == [mask_span(18, 8, 17)]
    pos, rows = labels_at(ex, "nibble_value", 0)
    assert pos == [3, 7] and [int(np.argmax(r)) for r in rows] == [10, 3]
    pos, rows = labels_at(ex, "remaining_set", 0)
    assert pos == [8, 12] and [set(np.flatnonzero(r)) for r in rows] == [{3, 10}, {10}]


def test_lcs_worked_example_and_its_tie_break():  # §6.6: the reference emits (2, 4)
    task = get_task("longest_common_subsequence", 4)
    ex = task.encode([[2, 3, 4, 5]], [[3, 2, 5, 4]])
    assert ex.ids.tolist() == [[2, 3, 4, 5, 3, 2, 5, 4, 19, 2, 4, 20, 20, 20]]
    assert task.seq_len == 14 and ex.loss_mask.tolist() == [mask_span(14, 8, 11)]
    assert labels_at(ex, "lcs_length", 0) == ([8], [2])
    assert labels_at(ex, "dp_last_row", 0) == ([4, 5, 6, 7], [1, 1, 2, 2])


def test_repeated_addition_worked_example():  # §11.6: L = 2, k = 2
    task = get_task("repeated_addition", 2)
    ex = task.encode([[2, 1]], [[3, 3]])
    assert ex.ids.tolist() == [[0, 1, 2, 1, 1, 3, 1, 0, 1, 4, 1, 0, 2, 1, 1, 3, 0, 0, 1, 4]]
    # every segment's '=' .. EOS is scored (targets 5..9 and 15..19)
    assert ex.loss_mask.tolist() == [[a | b for a, b in zip(mask_span(20, 5, 9),
                                                             mask_span(20, 15, 19))]]
    assert task.render(ex.ids[0]) == "01+11=101<EOS>10+11=001<EOS>"
    # carries out of columns 0, 1: 2+3 -> 0, 1; 1+3 -> 1, 1
    assert labels_at(ex, "carry", 0) == ([6, 7, 16, 17], [0, 1, 1, 1])
    assert labels_at(ex, "retrieve_first_op", 0) == ([5, 6, 15, 16], [0, 1, 1, 0])


# -- the halves tasks: every input at small L ---------------------------------------------------

@pytest.mark.parametrize("name", ["parity", "majority", "inner_product_mod2_parity"])
@pytest.mark.parametrize("L", [1, 3])
def test_halves_tasks_cover_every_input_once_per_unordered_pair(name, L):
    """[FIX] of the 2^L row cap: all 2^(2L) rows exist; a class is the unordered halves pair."""
    task = get_task(name, L)
    assert task.space_size == 2 ** L * (2 ** L + 1) // 2
    rows = [list(r) for r in itertools.product((0, 1), repeat=2 * L)]
    ex = task.encode_bits(rows)
    by_pair = {}
    for row, key in zip(rows, ex.keys.tolist()):
        by_pair.setdefault(frozenset([tuple(row[:L]), tuple(row[L:])]), set()).add(key)
    assert all(len(keys) == 1 for keys in by_pair.values())  # one key per unordered pair
    assert sorted(k for keys in by_pair.values() for k in keys) == list(range(task.space_size))
    gen = task.generate(*all_classes(task))  # generating a class gives an input of that class
    prompt = 2 * L + (name == "inner_product_mod2_parity")
    again = task.encode_bits([[int(t) for t in r[:prompt] if t != 2] for r in gen.ids])
    np.testing.assert_array_equal(again.keys, gen.keys)
    np.testing.assert_array_equal(again.ids, gen.ids)


@pytest.mark.parametrize("L", [1, 2, 4, 16, 32])
def test_parity_majority_inner_product_against_python(L):
    rng = random.Random(L)
    rows = [[rng.getrandbits(1) for _ in range(2 * L)] for _ in range(200)]
    rows += [[0] * 2 * L, [1] * 2 * L, [1] * L + [0] * L]
    par = get_task("parity", L).encode_bits(rows)
    maj = get_task("majority", L).encode_bits(rows)
    ip = get_task("inner_product_mod2_parity", L).encode_bits(rows)
    for i, x in enumerate(rows):
        ones = sum(x)
        assert par.ids[i].tolist() == x + [3, ones % 2, 4]
        assert maj.ids[i].tolist() == x + [3, int(ones > L), 4]  # a tie (ones == L) is 0
        a, b = x[:L], x[L:]
        y = sum(u * v for u, v in zip(a, b)) % 2
        assert ip.ids[i].tolist() == a + [2] + b + [3, y, 4]
        running, margins = 0, []
        for r in range(2 * L):
            running ^= x[r]
            margins.append(2 * sum(x[:r + 1]) - (r + 1))
            assert par.features["prefix_parity"].labels[i, r] == running
        assert labels_at(par, "answer_at_eq", i) == ([2 * L], [ones % 2])
        assert labels_at(maj, "prefix_margin", i) == (list(range(2 * L)), margins)
        assert labels_at(maj, "is_tie", i) == ([2 * L], [int(ones == L)])
        pos = list(range(L + 1, 2 * L + 1))
        assert labels_at(ip, "retrieve_first_op", i) == (pos, a)
        assert labels_at(ip, "pair_and", i) == (pos, [u & v for u, v in zip(a, b)])
        acc = [sum(u * v for u, v in zip(a[:j + 1], b[:j + 1])) % 2 for j in range(L)]
        assert labels_at(ip, "prefix_inner_parity", i) == (pos, acc)


def test_majority_tie_rate_matches_the_spec():
    """§2.3: P(tie) = C(2L, L) / 4^L, and a tie labels 0 [KEEP]: exact over all 2^8 inputs."""
    L = 4
    rows = [list(r) for r in itertools.product((0, 1), repeat=2 * L)]
    ex = get_task("majority", L).encode_bits(rows)
    ties = ex.features["is_tie"].labels[:, 0]
    assert ties.sum() == math.comb(2 * L, L)
    assert (ex.ids[ties == 1, 2 * L + 1] == 0).all()
    assert ex.ids[:, 2 * L + 1].sum() == (2 ** (2 * L) - math.comb(2 * L, L)) // 2


# -- sorting and binary sorting -----------------------------------------------------------------

def parse_sorting(text):
    prompt, answer = text.removesuffix("<EOS>").split("=")
    return [int(v) for v in prompt.split(",")], [int(v) for v in answer.split(",")]


@pytest.mark.parametrize("L", [1, 3])
def test_sorting_every_class_against_python(L):
    task = get_task("sorting", L)
    assert task.space_size == math.comb(L + 15, 15)  # multisets of L values from 16
    ex = task.generate(*all_classes(task, salt_seed=L))
    check_sorting(task, ex)
    seen = Counter(tuple(sorted(parse_sorting(task.render(r))[0])) for r in ex.ids)
    assert len(seen) == task.space_size  # every multiset exactly once


@pytest.mark.parametrize("L", [2, 6, 16, 40])
def test_sorting_random_classes_against_python(L):
    task = get_task("sorting", L)
    check_sorting(task, task.generate(*some_classes(task, 300, L)))


def check_sorting(task, ex):
    L, T = task.size, task.seq_len
    for i, row in enumerate(ex.ids.tolist()):
        text = task.render(np.array(row))
        values, answer = parse_sorting(text)
        assert len(values) == L and answer == sorted(values)  # numeric order [FIX]
        assert text == ",".join(map(str, values)) + "=" + ",".join(map(str, answer)) + "<EOS>"
        end = len(text) - len("<EOS>") + 1  # tokens through the first EOS
        assert row[end:] == [12] * (T - end)  # EOS padding to 6L [FIX]
        eq = row.index(11)
        assert eq == 2 * L - 1 + sum(v >= 10 for v in values)
        assert ex.loss_mask[i].tolist() == mask_span(T, eq, end - 1)
        assert ex.keys[i] == task.encode([values]).keys[0]
        # input_rank: the stable rank, read at the value's last digit
        ranks = [sum(w < v for w in values) + sum(w == v for w in values[:j])
                 for j, v in enumerate(values)]
        pos, labels = labels_at(ex, "input_rank", i)
        assert labels == ranks
        digits = [c for c in text[:text.index("=")]]
        last_digit = [k for k, c in enumerate(digits) if c != "," and
                      (k + 1 == len(digits) or digits[k + 1] == ",")]
        assert pos == last_digit
        # remaining_set: at '=' and each ',' of the answer, the values still to emit
        pos, rows = labels_at(ex, "remaining_set", i)
        commas = [k for k in range(eq + 1, end) if row[k] == 10]
        assert pos == [eq] + commas
        assert [set(np.flatnonzero(r)) for r in rows] == [set(answer[k:]) for k in range(L)]


def test_binary_sorting_every_class_against_python():
    task = get_task("binary_sorting", 2)
    assert task.space_size == math.comb(2 + 15, 15)
    ex = task.generate(*all_classes(task, salt_seed=2))
    check_binary_sorting(task, ex)
    assert len({tuple(sorted(nibbles_of(r[:8]))) for r in ex.ids.tolist()}) == task.space_size


def nibbles_of(bits):
    return [int("".join(map(str, bits[k:k + 4])), 2) for k in range(0, len(bits), 4)]


@pytest.mark.parametrize("L", [1, 5, 32])
def test_binary_sorting_random_classes_against_python(L):
    task = get_task("binary_sorting", L)
    check_binary_sorting(task, task.generate(*some_classes(task, 200, L)))


def check_binary_sorting(task, ex):
    L = task.size
    for i, row in enumerate(ex.ids.tolist()):
        d = nibbles_of(row[:4 * L])
        hexed = "".join(f"{v:x}" for v in d)
        out = "".join(sorted(hexed))  # the reference's rule on the zero-filled hex string
        want = [int(c) for c in bin(int(out, 16))[2:].zfill(4 * L)]
        assert row == row[:4 * L] + [3] + want + [4]
        assert ex.keys[i] == task.encode([d]).keys[0]
        pos, rows = labels_at(ex, "nibble_value", i)
        assert pos == [4 * k + 3 for k in range(L)] and [r.index(1) for r in rows] == d
        s = sorted(d)
        pos, rows = labels_at(ex, "remaining_set", i)
        assert pos == [4 * L + 4 * k for k in range(L)]
        assert [set(np.flatnonzero(r)) for r in rows] == [set(s[k:]) for k in range(L)]


# -- longest common subsequence -----------------------------------------------------------------

def reference_lcs(x, y):
    """The spec's §6.3 table and backtrack, one cell at a time."""
    L = len(x)
    dp = [[0] * (L + 1) for _ in range(L + 1)]
    for i in range(L):
        for j in range(L):
            dp[i + 1][j + 1] = dp[i][j] + 1 if x[i] == y[j] else max(dp[i][j + 1], dp[i + 1][j])
    i, j, out = L, L, []
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            out.append(x[i - 1])
            i, j = i - 1, j - 1
        elif dp[i - 1][j] >= dp[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out[::-1], dp


def is_subsequence(z, s):
    it = iter(s)
    return all(c in it for c in z)


def longest_common_length(x, y):
    """Brute force: the longest subsequence of x that is also one of y."""
    for k in range(len(x), -1, -1):
        if any(is_subsequence(z, y) for z in itertools.combinations(x, k)):
            return k


@pytest.mark.parametrize("L", [1, 3, 6, 16, 32])
def test_lcs_against_python_and_brute_force(L):
    task = get_task("longest_common_subsequence", L)
    ex = task.generate(*some_classes(task, 150, L))
    for i, row in enumerate(ex.ids.tolist()):
        x, y = row[:L], row[L:2 * L]
        z, dp = reference_lcs(x, y)
        assert row == x + y + [19] + z + [20] * (L + 1 - len(z))
        assert is_subsequence(z, x) and is_subsequence(z, y)
        if L <= 6:
            assert len(z) == longest_common_length(x, y)
        assert ex.loss_mask[i].tolist() == mask_span(3 * L + 2, 2 * L, 2 * L + len(z) + 1)
        assert ex.keys[i] == task.encode([x], [y]).keys[0]
        pos, rows = labels_at(ex, "match_vector", i)
        assert pos == list(range(L, 2 * L))
        assert rows == [[int(x[a] == y[j]) for a in range(L)] for j in range(L)]
        assert labels_at(ex, "dp_last_row", i) == (list(range(L, 2 * L)), dp[L][1:])
        assert labels_at(ex, "lcs_length", i) == ([2 * L], [len(z)])


def test_lcs_classes_are_multisets_of_all_2L_values():
    task = get_task("longest_common_subsequence", 2)
    assert task.space_size == math.comb(4 + 8, 8)  # multisets of 2L values from 1..9
    ex = task.generate(*all_classes(task, salt_seed=5))
    seen = {tuple(sorted(r[:4])) for r in ex.ids.tolist()}
    assert len(seen) == task.space_size and all(1 <= v <= 9 for s in seen for v in s)
    # two splits of one multiset between X and Y are one class
    a, b = task.encode([[1, 2]], [[3, 4]]), task.encode([[4, 1]], [[2, 3]])
    assert a.keys[0] == b.keys[0] and a.ids.tolist() != b.ids.tolist()


# -- repeated addition --------------------------------------------------------------------------

@pytest.mark.parametrize("L", [1, 3, 8, 16])
def test_repeated_addition_against_python(L):
    task = get_task("repeated_addition", L)
    W, T = 3 * L + 4, 2 * (3 * L + 4)
    assert task.seq_len == T
    ex = task.generate(*some_classes(task, 200, L))
    for i, row in enumerate(ex.ids.tolist()):
        a, b, carries, firsts, want_mask = [], [], [], [], []
        for s in range(2):
            seg = row[s * W:(s + 1) * W]
            aa = sum(v << k for k, v in enumerate(seg[:L]))
            bb = sum(v << k for k, v in enumerate(seg[L + 1:2 * L + 1]))
            total = aa + bb
            assert seg == ([(aa >> k) & 1 for k in range(L)] + [2] +
                           [(bb >> k) & 1 for k in range(L)] + [3] +
                           [(total >> k) & 1 for k in range(L + 1)] + [4])
            a.append(aa)
            b.append(bb)
            carries += [((aa % 2 ** (r + 1)) + (bb % 2 ** (r + 1))) >> (r + 1) for r in range(L)]
            firsts += [(aa >> r) & 1 for r in range(L)]
            want_mask += [0] * (2 * L + 1) + [1] * (L + 3)
        assert ex.loss_mask[i].tolist() == want_mask
        assert labels_at(ex, "carry", i) == (
            [s * W + 2 * L + 2 + r for s in range(2) for r in range(L)], carries)
        assert labels_at(ex, "retrieve_first_op", i) == (
            [s * W + 2 * L + 1 + r for s in range(2) for r in range(L)], firsts)
        assert ex.keys[i] == task.encode([a], [b]).keys[0]


def test_repeated_addition_classes_are_tuples_of_unordered_pairs():
    """[FIX] of the reference's grouping at bit L: per-segment unordered pairs, in order."""
    task = get_task("repeated_addition", 2)
    pairs = [(x, y) for x in range(4) for y in range(4)]
    combos = [(p, q) for p in pairs for q in pairs]
    ex = task.encode([[p[0], q[0]] for p, q in combos], [[p[1], q[1]] for p, q in combos])
    classes = {}
    for (p, q), key in zip(combos, ex.keys.tolist()):
        classes.setdefault((frozenset(p), frozenset(q)), set()).add(key)
    assert all(len(k) == 1 for k in classes.values())
    assert sorted(k.pop() for k in classes.values()) == list(range(task.space_size))
    assert task.space_size == 10 ** 2
    with pytest.raises(ValueError, match="out of range"):
        get_task("repeated_addition", 17)  # P**2 would not fit 64 bits


# -- contract shared by the seven -----------------------------------------------------------------

@pytest.mark.parametrize("name", EXTRA)
def test_generate_is_deterministic_and_matches_the_declared_features(name):
    task = get_task(name, 3)
    index, salt = some_classes(task, 50, 9)
    ex, again = task.generate(index, salt), task.generate(index, salt)
    np.testing.assert_array_equal(ex.ids, again.ids)
    np.testing.assert_array_equal(ex.keys, index)  # the key is the class number
    assert ex.ids.max() < task.vocab_size and ex.ids.shape == (len(index), task.seq_len)
    assert set(ex.features) == {f.name for f in task.features}
    for f in task.features:
        fl = ex.features[f.name]
        assert fl.kind == f.kind and "proposal" in f.doc
        assert ((fl.positions >= 0) & (fl.positions < task.seq_len)).all()
    first = ex.loss_mask.argmax(1)  # scoring starts at '=' and the sequence ends in EOS
    assert (ex.ids[np.arange(len(ex.ids)), first] == task.eq_id).all()
    assert (ex.ids[:, -1] == task.eos_id).all()
    assert task.generate(index, salt, features=False).features == {}


@pytest.mark.parametrize("name", EXTRA)
def test_data_splits_are_disjoint_classes(name):
    task = get_task(name, 4)
    stream = Stream(task, seed=1, layout=Layout(8, 8, 16, 8))
    keys = [set(stream.examples(s).keys.tolist())
            for s in ("val", "test", "probe_train", "probe_test")]
    keys.append(set(stream.examples("train", 0, 40).keys.tolist()))
    assert sum(map(len, keys)) == len(set().union(*keys)) == 80


def test_sizes_out_of_range_fail_loudly():
    for name, size in [("parity", 33), ("sorting", 0), ("binary_sorting", 33),
                       ("longest_common_subsequence", 33)]:
        with pytest.raises(ValueError, match="out of range"):
            get_task(name, size)
