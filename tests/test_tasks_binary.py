"""Binary tasks: answers, feature labels, positions and instance spaces against independent
references (Python ints, bit-by-bit loops, brute-force enumeration) and probes.md §12."""
import random

import numpy as np
import pytest

from qlf.tasks import get_task
from qlf.tasks.binary import Addition, MajorityOfMajority, Multiplication

SIZES = [1, 2, 4, 7, 16, 32]


def rand_operands(L, n, seed):
    rng = random.Random(seed)
    pairs = [(rng.randrange(1 << L), rng.randrange(1 << L)) for _ in range(n)]
    pairs += [(0, 0), ((1 << L) - 1, (1 << L) - 1), (0, (1 << L) - 1)]  # extremes
    return [p[0] for p in pairs], [p[1] for p in pairs]


def rand_classes(task, n, seed):
    rng = random.Random(seed)
    ks = [rng.randrange(task.space_size) for _ in range(n)] + [0, task.space_size - 1]
    return np.array(ks, dtype=np.uint64), np.array([rng.getrandbits(64) for _ in ks], np.uint64)


def bits_lsb(x, width):
    return [(x >> i) & 1 for i in range(width)]


def value_lsb(bits):
    return sum(int(v) << i for i, v in enumerate(bits))


def ripple_carries(a, b, L):
    """c_1..c_L of a+b, one column at a time."""
    c, out = 0, []
    for i in range(L):
        ai, bi = (a >> i) & 1, (b >> i) & 1
        c = (ai & bi) | ((ai ^ bi) & c)
        out.append(c)
    return out


def multiplication_step_carries(a, b, L, k):
    """probes.md §5.2: add the partial products PP_0..PP_{k-1} into a 2L-column running sum with
    ripple carry; return the carries into columns k..k+L-1 of the last step only."""
    total = [0] * (2 * L)
    for i in range(k):
        pp = [0] * (2 * L)
        if (b >> i) & 1:
            for j in range(L):
                pp[i + j] = (a >> j) & 1
        carry_in, c = [0] * (2 * L), 0
        for col in range(2 * L):
            carry_in[col] = c
            s = total[col] + pp[col] + c
            total[col], c = s & 1, s >> 1
    return carry_in[k:k + L]


def decode_pair_task(ids, L):
    a = value_lsb(ids[:L])
    b = value_lsb(ids[L + 1:2 * L + 1])
    return a, b


# -- addition -----------------------------------------------------------------------------------

@pytest.mark.parametrize("L", SIZES)
def test_addition_answers_and_features(L):
    task = Addition(L)
    a, b = rand_operands(L, 200, seed=L)
    ex = task.encode(np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64))
    assert ex.ids.shape == (len(a), 3 * L + 4) == (len(a), task.seq_len)
    for i, (x, y) in enumerate(zip(a, b)):
        row = ex.ids[i].tolist()
        assert row == bits_lsb(x, L) + [2] + bits_lsb(y, L) + [3] + bits_lsb(x + y, L + 1) + [4]
        assert ex.features["retrieve_first_op"].labels[i].tolist() == bits_lsb(x, L)
        assert ex.features["carry"].labels[i].tolist() == ripple_carries(x, y, L)
    assert ex.features["retrieve_first_op"].positions[0].tolist() == [2 * L + 1 + r for r in range(L)]
    assert ex.features["carry"].positions[0].tolist() == [2 * L + 2 + r for r in range(L)]
    for f in ex.features.values():
        assert (f.positions == f.positions[0]).all() and f.positions.dtype == np.int32


@pytest.mark.parametrize("L", [1, 4, 16, 32])
def test_addition_generate_matches_python(L):
    task = Addition(L)
    index, salt = rand_classes(task, 300, seed=100 + L)
    ex = task.generate(index, salt)
    assert ex.keys.tolist() == index.tolist()
    for row, k in zip(ex.ids, index.tolist()):
        x, y = decode_pair_task(row.tolist(), L)
        assert value_lsb(row[2 * L + 2:3 * L + 3]) == x + y
        assert task.encode([x], [y]).keys[0] == k  # rank(unrank(k)) == k
    assert (task.generate(index, salt).ids == ex.ids).all()  # deterministic


def test_addition_worked_example():
    """probes.md §12, addition L = 4."""
    ex = Addition(4).encode([11], [13])
    assert ex.ids[0].tolist() == [1, 1, 0, 1, 2, 1, 0, 1, 1, 3, 0, 0, 0, 1, 1, 4]
    assert ex.features["retrieve_first_op"].positions[0].tolist() == [9, 10, 11, 12]
    assert ex.features["retrieve_first_op"].labels[0].tolist() == [1, 1, 0, 1]
    assert ex.features["carry"].positions[0].tolist() == [10, 11, 12, 13]
    assert ex.features["carry"].labels[0].tolist() == [1, 1, 1, 1]
    assert ex.loss_mask[0].tolist() == [0] * 9 + [1] * 7


# -- multiplication -----------------------------------------------------------------------------

@pytest.mark.parametrize("L", SIZES)
def test_multiplication_answers_and_carries(L):
    task = Multiplication(L)
    a, b = rand_operands(L, 40 if L == 32 else 80, seed=7 * L)
    ex = task.encode(a, b)
    assert ex.ids.shape == (len(a), 4 * L + 3) == (len(a), task.seq_len)
    assert [f.name for f in task.features] == ["retrieve_first_op"] + [
        f"carry_{k}" for k in range(1, L + 1)]
    assert set(ex.features) == {f.name for f in task.features}
    assert "carry" not in ex.features
    ks = range(1, L + 1) if L <= 16 else [1, 2, 3, 16, 17, 31, 32]
    for i, (x, y) in enumerate(zip(a, b)):
        row = ex.ids[i].tolist()
        assert row == bits_lsb(x, L) + [2] + bits_lsb(y, L) + [3] + bits_lsb(x * y, 2 * L) + [4]
        assert ex.features["retrieve_first_op"].labels[i].tolist() == bits_lsb(x, L)
        for k in ks:
            got = ex.features[f"carry_{k}"].labels[i].tolist()
            assert got == multiplication_step_carries(x, y, L, k), (x, y, k)
    for k in range(1, L + 1):
        pos = ex.features[f"carry_{k}"].positions[0].tolist()
        assert pos == [2 * L + 1 + k + r for r in range(L)]
        assert max(pos) < task.seq_len


@pytest.mark.parametrize("L", [1, 4, 16, 32])
def test_multiplication_generate_matches_python(L):
    task = Multiplication(L)
    index, salt = rand_classes(task, 200, seed=200 + L)
    ex = task.generate(index, salt, features=False)
    assert ex.features == {}
    assert ex.keys.tolist() == index.tolist()
    for row, k in zip(ex.ids, index.tolist()):
        x, y = decode_pair_task(row.tolist(), L)
        assert value_lsb(row[2 * L + 2:4 * L + 2]) == x * y
        assert task.encode([y], [x]).keys[0] == k


def test_multiplication_worked_example():
    """probes.md §12, multiplication L = 4."""
    task = Multiplication(4)
    ex = task.encode([11], [15])
    assert ex.ids[0].tolist() == [1, 1, 0, 1, 2, 1, 1, 1, 1, 3, 1, 0, 1, 0, 0, 1, 0, 1, 4]
    expected = {
        "retrieve_first_op": ([9, 10, 11, 12], [1, 1, 0, 1]),
        "carry_1": ([10, 11, 12, 13], [0, 0, 0, 0]),
        "carry_2": ([11, 12, 13, 14], [1, 1, 1, 1]),
        "carry_3": ([12, 13, 14, 15], [0, 0, 0, 1]),
        "carry_4": ([13, 14, 15, 16], [1, 1, 0, 1]),
    }
    assert set(ex.features) == set(expected)
    for name, (pos, lab) in expected.items():
        assert ex.features[name].positions[0].tolist() == pos, name
        assert ex.features[name].labels[0].tolist() == lab, name
    assert task.feature("carry_4").kind == "binary"
    with pytest.raises(ValueError, match="carry_5"):
        task.feature("carry_5")


def test_multiplication_carry_zero_when_multiplier_bit_zero():
    L = 8
    a, b = rand_operands(L, 100, seed=3)
    ex = Multiplication(L).encode(a, b)
    for k in range(1, L + 1):
        zero_bit = np.array([(y >> (k - 1)) & 1 == 0 for y in b])
        assert (ex.features[f"carry_{k}"].labels[zero_bit] == 0).all()
    assert (ex.features["carry_1"].labels == 0).all()


# -- instance space of operand pairs ------------------------------------------------------------

@pytest.mark.parametrize("cls", [Addition, Multiplication])
@pytest.mark.parametrize("L", [1, 2, 3, 4, 6])
def test_pair_unranking_is_a_bijection(cls, L):
    task = cls(L)
    N = 1 << L
    assert task.space_size == N * (N + 1) // 2
    index = np.arange(task.space_size, dtype=np.uint64)
    salt = np.arange(task.space_size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    ex = task.generate(index, salt, features=False)
    pairs = [decode_pair_task(r, L) for r in ex.ids.tolist()]
    unordered = [tuple(sorted(p)) for p in pairs]
    assert sorted(unordered) == [(x, y) for x in range(N) for y in range(x, N)]
    assert ex.keys.tolist() == index.tolist()
    a = np.array([p[0] for p in pairs], dtype=np.uint64)
    b = np.array([p[1] for p in pairs], dtype=np.uint64)
    assert task.encode(a, b).keys.tolist() == index.tolist()
    assert task.encode(b, a).keys.tolist() == index.tolist()
    if L >= 3:  # the salt picks the operand order: both orders occur
        swapped = [p[0] > p[1] for p in pairs]
        assert any(swapped) and not all(swapped)


def test_pair_rank_at_32_bits_edges():
    task = Addition(32)
    assert task.space_size == 2**63 + 2**31
    top = (1 << 32) - 1
    a = np.array([0, 0, top, top, 2**31 - 1, 2**31, 2**31, 12345], dtype=np.uint64)
    b = np.array([0, top, top, 0, 2**31, 2**31, top, 2**31 + 7], dtype=np.uint64)
    keys = task.encode(a, b).keys
    assert keys.min() == 0 and int(keys.max()) == task.space_size - 1
    lo, hi = task.unrank(keys)
    assert lo.tolist() == np.minimum(a, b).tolist() and hi.tolist() == np.maximum(a, b).tolist()
    with pytest.raises(ValueError, match="out of range"):
        task.generate(np.array([task.space_size], np.uint64), np.zeros(1, np.uint64))


def test_operand_order_follows_salt():
    task = Addition(16)
    index = np.full(2000, 123456789, dtype=np.uint64)
    salt = np.arange(2000, dtype=np.uint64)
    ex = task.generate(index, salt, features=False)
    firsts = {decode_pair_task(r, 16) for r in ex.ids.tolist()}
    assert len(firsts) == 2  # both orders of one pair
    share = np.mean([decode_pair_task(r, 16)[0] < decode_pair_task(r, 16)[1]
                     for r in ex.ids.tolist()])
    assert 0.4 < share < 0.6


# -- majority of majorities ---------------------------------------------------------------------

@pytest.mark.parametrize("L", [2, 4, 6, 16, 32])
def test_majority_answers_and_features(L):
    task = MajorityOfMajority(L)
    assert task.seq_len == 2 * L + 3 and task.space_size == 2 ** (2 * L)
    G = L // 2
    rng = np.random.default_rng(L)
    bits = rng.integers(0, 2, size=(300, 2 * L))
    bits[0], bits[1] = 0, 1
    ex = task.encode(bits)
    for i, x in enumerate(bits.tolist()):
        counts = [sum(x[g * G:(g + 1) * G]) for g in range(4)]
        groups = [1 if c > G / 2 else 0 for c in counts]
        y = 1 if sum(groups) > 2 else 0
        assert ex.ids[i].tolist() == x + [3, y, 4]
        assert ex.features["group_popcount"].labels[i].tolist() == counts
        assert ex.features["group_majority"].labels[i].tolist() == groups
        assert int(ex.keys[i]) == sum(v << j for j, v in enumerate(x))
    for name in ("group_majority", "group_popcount"):
        assert ex.features[name].positions[0].tolist() == [G - 1, 2 * G - 1, 3 * G - 1, 4 * G - 1]
    assert ex.features["group_popcount"].kind == "regression"
    # generate() is the same code path: class number = bit string
    again = task.generate(ex.keys, np.zeros(len(ex.keys), np.uint64))
    assert (again.ids == ex.ids).all() and (again.keys == ex.keys).all()


def test_majority_exhaustive_small():
    task = MajorityOfMajority(4)  # 8 bits, groups of 2
    index = np.arange(256, dtype=np.uint64)
    ex = task.generate(index, index)
    for k in range(256):
        x = [(k >> i) & 1 for i in range(8)]
        assert ex.ids[k, :8].tolist() == x
        y = sum(x[2 * g] + x[2 * g + 1] == 2 for g in range(4)) > 2
        assert ex.ids[k, 9] == y
    assert ex.ids[:, 9].sum() == 1 + 4 * 3  # all four groups full, or exactly three


def test_majority_default_size_is_64_input_bits():
    task = MajorityOfMajority()
    assert task.size == 32 and task.seq_len == 67 and task.space_size == 2**64
    index = np.array([0, 2**64 - 1, 0xFFFF_0000_FFFF_FFFF], dtype=np.uint64)
    ex = task.generate(index, np.zeros(3, np.uint64))
    assert ex.ids[:, 65].tolist() == [0, 1, 1]
    assert ex.features["group_popcount"].labels.tolist()[2] == [16, 16, 0, 16]


# -- shared behaviour ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,L", [("addition", 5), ("multiplication", 5),
                                    ("majority_of_majority", 6)])
def test_loss_mask_and_layout(name, L):
    task = get_task(name, L)
    assert task.tokens == ("0", "1", "+", "=", "<EOS>") and task.eq_id == 3 and task.eos_id == 4
    index, salt = rand_classes(task, 50, seed=9)
    ex = task.generate(index, salt)
    eq = (ex.ids == 3).argmax(axis=1)
    assert (ex.ids == 3).sum(axis=1).tolist() == [1] * len(ex)
    assert (ex.ids == 4).sum(axis=1).tolist() == [1] * len(ex)
    assert (ex.ids[:, -1] == 4).all()
    t = np.arange(task.seq_len)
    assert (ex.loss_mask == (t[None, :] >= eq[:, None])).all()
    assert ex.ids.dtype == np.uint8 and ex.loss_mask.dtype == np.uint8 and ex.keys.dtype == np.uint64
    for f in task.features:
        lab = ex.features[f.name]
        assert lab.kind == f.kind and lab.positions.shape == lab.labels.shape[:2]
        assert (lab.positions >= 0).all() and (lab.positions < task.seq_len).all()
        assert f.doc


@pytest.mark.parametrize("name,bad", [("addition", 0), ("addition", 33), ("multiplication", 0),
                                      ("multiplication", 33), ("majority_of_majority", 0),
                                      ("majority_of_majority", 3), ("majority_of_majority", 31),
                                      ("majority_of_majority", 34)])
def test_bad_sizes_raise(name, bad):
    with pytest.raises(ValueError, match=str(bad)):
        get_task(name, bad)


def test_bad_inputs_raise():
    add = Addition(4)
    with pytest.raises(ValueError, match="0..15"):
        add.encode([16], [0])
    with pytest.raises(ValueError, match="0..15"):
        add.encode([-1], [0])
    with pytest.raises(ValueError, match="same length"):
        add.encode([1, 2], [3])
    with pytest.raises(ValueError, match="out of range"):
        add.generate(np.array([add.space_size], np.uint64), np.zeros(1, np.uint64))
    maj = MajorityOfMajority(4)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        maj.encode(np.zeros((2, 7), int))
    with pytest.raises(ValueError, match="0 or 1"):
        maj.encode(np.full((2, 8), 2))
    with pytest.raises(ValueError, match="out of range"):
        maj.generate(np.array([256], np.uint64), np.zeros(1, np.uint64))
