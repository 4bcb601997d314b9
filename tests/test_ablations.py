"""qlf.ablations: the projection operator, where and when it acts, random controls, evaluation,
bootstrap statistics and the result/summary formats. Tiny random models; the end-to-end check on a
trained model is bench/bench_ablation_addition.py."""
import json
import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import qlf.ablations as ablations
from qlf.ablations import (Evaluation, FeatureAblation, Intervention, Projector, RandomControl,
                           ReferenceControl, _combined, ablate_feature, ablate_selected,
                           across_seeds, bootstrap_counts, displacement_norms, evaluate, project,
                           resid_post, resolve_top_k, summarise, summary_table, targets_table)
from qlf.provenance import COLUMNS as PROVENANCE_COLUMNS
from qlf.model import ModelConfig, Transformer, exact_match, greedy_decode
from qlf.probes import FittedProbe
from qlf.tasks import Examples, FeatureLabels, get_task

BITS = 4


def Probe(feature, kind, layer, row, W, b):
    """A FittedProbe with placeholder metadata (the ablation reads only W, b, layer, row)."""
    return FittedProbe(feature, kind, layer, row, W, b, None, 0.1, 0.2)


class Capture(Intervention):
    """Records the activation it sees at hook points (one full forward pass at a time)."""

    def __init__(self, n, names):
        self.n_examples, self.names, self.seen = n, names, {}

    def hooks(self, rows, device):
        def keep(name):
            def fn(x, start):
                self.seen[name] = x.detach().clone()
            return fn
        return {name: keep(name) for name in self.names}


class Identity(Intervention):
    def __init__(self, n):
        self.n_examples = n

    def hooks(self, rows, device):
        return {resid_post(0): lambda x, start: x, resid_post(1): lambda x, start: None}


def tiny_model(task, seed=0, d=16, layers=2):
    torch.manual_seed(seed)
    return Transformer(ModelConfig(task.vocab_size, task.seq_len, d, layers, 2)).eval()


def random_probes(feature, rows, layer, V, d, seed, bias=3.0):
    rng = np.random.default_rng(seed)
    return {r: [Probe(feature, "binary", layer, r,
                      rng.standard_normal((V, d)).astype(np.float32),
                      (bias * rng.standard_normal(V)).astype(np.float32))] for r in rows}


@pytest.fixture(scope="module")
def addition():
    task = get_task("addition", BITS)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 2**BITS, 48), rng.integers(0, 2**BITS, 48)
    return task, task.encode(a, b), a, b


@pytest.fixture(scope="module")
def model(addition):
    return tiny_model(addition[0])


def chain_capture(model, ex, ivs, names):
    """Capture the activations after the interventions `ivs` have edited them."""
    cap = Capture(len(ex), names)
    hooks = _combined([iv.hooks(np.arange(len(ex)), "cpu") for iv in list(ivs) + [cap]])
    with torch.no_grad():
        model(torch.as_tensor(ex.ids).long(), hooks)
    return cap.seen


def before_after(model, ex, intervention, layer):
    """The block output at `layer` without and with `intervention` (float64)."""
    name = resid_post(layer)
    return (chain_capture(model, ex, [], [name])[name].double(),
            chain_capture(model, ex, [intervention], [name])[name].double())


def constrained_nearest(x, W, b):
    """Independent: nearest point to x on {z: W z + b = 0} by a null-space parametrisation."""
    z0 = np.linalg.lstsq(W, -b, rcond=None)[0]
    _, s, vt = np.linalg.svd(W)
    null = vt[(s > 1e-10).sum():].T  # (d, d - rank)
    return z0 + (x - z0) @ null @ null.T


# -- the operator ---------------------------------------------------------------------------------

@pytest.mark.parametrize("V", [1, 3, 7])
def test_projection_is_the_nearest_point_with_zero_logits(V):
    rng = np.random.default_rng(V)
    d = 12
    W, b = rng.standard_normal((V, d)) * 5, rng.standard_normal(V) * 4
    x = torch.as_tensor(rng.standard_normal((20, d)) * 3)
    out = project(x, W, b).numpy()
    logits = out @ W.T + b
    assert np.abs(logits).max() < 1e-9 * np.abs(x.numpy() @ W.T + b).max()
    for xi, oi in zip(x.numpy(), out):
        np.testing.assert_allclose(oi, constrained_nearest(xi, W, b), atol=1e-9)
    if V == 1:  # x - (ŵ·x + b̂)ŵ
        w_hat, b_hat = W[0] / np.linalg.norm(W[0]), b[0] / np.linalg.norm(W[0])
        np.testing.assert_allclose(out, x.numpy() - np.outer(x.numpy() @ w_hat + b_hat, w_hat),
                                   atol=1e-9)
    # dtype kept; projecting twice changes nothing
    assert project(x.float(), W, b).dtype == torch.float32
    np.testing.assert_allclose(project(torch.as_tensor(out), W, b).numpy(), out, atol=1e-9)


def test_reference_summed_projection_is_not_exact():
    """The reference's Σ_v (ŵ_v·x + b̂_v)ŵ_v leaves nonzero logits for correlated rows (§7.2)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 8))
    W[1] += 2 * W[0]
    b = rng.standard_normal(3)
    x = rng.standard_normal(8) * 4
    Wn, bn = W / np.linalg.norm(W, axis=1)[:, None], b / np.linalg.norm(W, axis=1)
    summed = x - (Wn @ x + bn) @ Wn
    exact = project(torch.as_tensor(x), W, b).numpy()
    assert np.abs(Wn @ summed + bn).max() > 0.1
    assert np.abs(Wn @ exact + bn).max() < 1e-10


@pytest.mark.parametrize("K", [2, 4])
def test_softmax_probe_becomes_uniform(K):
    """One-hot probes: all K logits equal afterwards (softmax is shift-invariant), also for an
    uncentred intercept; the two-class pair (-w/2, w/2) is one hyperplane."""
    rng = np.random.default_rng(K)
    d = 10
    if K == 2:
        w, c = rng.standard_normal(d), 1.5
        W, b = np.stack([-w / 2, w / 2]), np.array([-c / 2, c / 2])
    else:  # as sklearn's multinomial fit: rows sum to 0 (L2 penalty), the intercepts need not
        G = rng.standard_normal((K, d))
        W, b = G - G.mean(0), rng.standard_normal(K) + 3.0
    x = torch.as_tensor(rng.standard_normal((30, d)) * 4)
    logits = project(x, W, b, softmax=True).numpy() @ W.T + b
    assert np.ptp(logits, axis=1).max() < 1e-9 * np.abs(x.numpy() @ W.T + b).max()
    assert Projector(W, b, softmax=True).rank == K - 1
    if K == 2:  # the same as the binary probe (w, c)
        np.testing.assert_allclose(project(x, W, b, softmax=True).numpy(),
                                   project(x, w[None], [c]).numpy(), atol=1e-10)
    else:  # without centring, W z + b = 0 has no solution and the logits stay unequal
        raw = project(x, W, b).numpy() @ W.T + b
        assert np.ptp(raw, axis=1).min() > 0.1


def test_inconsistent_rows_give_least_squares_logits():
    """More rows than dimensions: the logits' sum of squares is minimised (no exact solution)."""
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((9, 4)), rng.standard_normal(9)
    x = torch.as_tensor(rng.standard_normal((5, 4)))
    out = project(x, W, b).numpy()
    Wn, bn = W / np.linalg.norm(W, axis=1)[:, None], b / np.linalg.norm(W, axis=1)
    best = np.linalg.lstsq(Wn, -bn, rcond=None)[0]
    for row in out:
        assert np.linalg.norm(Wn @ row + bn) == pytest.approx(np.linalg.norm(Wn @ best + bn),
                                                              rel=1e-9)


@pytest.mark.parametrize("W, b, match", [
    (np.zeros((1, 4)), np.zeros(1), "zero weights"),
    (np.ones((2, 4)), np.ones(3), "shapes"),
    (np.full((1, 4), np.nan), np.zeros(1), "finite"),
])
def test_bad_probe_raises(W, b, match):
    with pytest.raises(ValueError, match=match):
        Projector(W, b)


# -- where the ablation acts --------------------------------------------------------------------

@pytest.mark.parametrize("V, layer", [(1, 0), (3, 1)])
def test_logits_zero_at_targets_and_earlier_positions_untouched(addition, model, V, layer):
    task, ex, a, b = addition
    labels = ex.features["carry"]
    selected = random_probes("carry", range(BITS), layer, V, 16, seed=V)
    ablation = FeatureAblation.from_probes(selected, labels.positions)
    names = [resid_post(i) for i in range(2)]
    base = chain_capture(model, ex, [], names)
    after = chain_capture(model, ex, [ablation], names)
    n = np.arange(len(ex))
    shifts = []
    for r, (probe,) in selected.items():
        x = after[resid_post(layer)][n, labels.positions[:, r]].double().numpy()
        distance = (x @ probe.W.T + probe.b) / np.linalg.norm(probe.W, axis=1)
        assert np.abs(distance).max() < 1e-5
        before = base[resid_post(layer)][n, labels.positions[:, r]].double().numpy()
        assert np.abs((before @ probe.W.T + probe.b)).min() > 1e-3  # it did move
        W, c = probe.W.astype(np.float64), probe.b.astype(np.float64)
        shifts.append([np.mean([np.linalg.norm(v - constrained_nearest(v, W, c)) for v in before]),
                       np.linalg.norm(before, axis=1).mean()])
    np.testing.assert_allclose(displacement_norms(model, ex, ablation, batch_size=20), shifts,
                               rtol=1e-5)
    # at the ablated layer exactly the targeted tokens changed: carry row r -> the token s_r
    changed = (after[resid_post(layer)] != base[resid_post(layer)]).any(-1).numpy()
    L = BITS
    assert (changed.sum(1) == L).all()
    for r in range(L):
        assert changed[:, 2 * L + 2 + r].all()
        assert (ex.ids[:, 2 * L + 2 + r] == [((int(x) + int(y)) >> r) & 1
                                             for x, y in zip(a, b)]).all()
    # every layer: positions before the first ablated one keep their activations exactly
    first = labels.positions.min()
    for name in names:
        assert torch.equal(after[name][:, :first], base[name][:, :first])
    if layer == 1:  # layers below the ablated one are untouched everywhere
        assert torch.equal(after[resid_post(0)], base[resid_post(0)])
    else:  # later positions are affected through attention in later layers
        later = slice(first + 1, None)
        assert not torch.equal(after[resid_post(1)][:, later], base[resid_post(1)][:, later])


def test_graph_rows_hit_their_own_tokens_per_example(graphs_dir):
    """graph_path `queue` row r sits at o_r (per example, ragged): the hit tokens are the first
    m-1 nodes of a shortest path from the source (checked with networkx), absent rows untouched."""
    task = get_task("graph_path", 6, graphs_dir=graphs_dir)
    rng = np.random.default_rng(5)
    ex = task.generate(rng.integers(0, task.space_size, 40).astype(np.uint64),
                       rng.integers(0, 2**63, 40).astype(np.uint64))
    model = tiny_model(task, d=16)
    labels = ex.features["queue"]
    assert (labels.positions == -1).any()  # ragged: some rows absent
    selected = random_probes("queue", range(labels.positions.shape[1]), 1, 2, 16, seed=9)
    ablation = FeatureAblation.from_probes(selected, labels.positions)
    base = chain_capture(model, ex, [], [resid_post(1)])[resid_post(1)]
    after = chain_capture(model, ex, [ablation], [resid_post(1)])[resid_post(1)]
    changed = (after != base).any(-1).numpy()
    for i, ids in enumerate(ex.ids):
        eq = int(np.flatnonzero(ids == task.eq_id)[0])
        graph = nx.Graph()
        graph.add_edges_from(ids[2:eq].reshape(-1, 2).tolist())
        source, target = int(ids[0]), int(ids[1])
        length = nx.shortest_path_length(graph, source, target)
        hit = np.flatnonzero(changed[i])
        assert len(hit) == length  # rows 0..m-2 of an m-node path
        nodes = ids[hit].tolist()
        assert nodes[0] == source
        assert all(graph.has_edge(u, v) for u, v in zip(nodes, nodes[1:]))
        assert all(nx.shortest_path_length(graph, source, v) == k for k, v in enumerate(nodes))


def test_targets_validated(addition):
    task, ex, _, _ = addition
    pos = ex.features["carry"].positions
    with pytest.raises(ValueError, match="outside the feature's rows"):
        FeatureAblation.from_probes(random_probes("carry", [BITS], 0, 1, 16, 0), pos)
    with pytest.raises(ValueError, match="no targets"):
        FeatureAblation.from_probes({}, pos)
    with pytest.raises(ValueError, match=r"\(n, R\) integer"):
        FeatureAblation.from_probes(random_probes("carry", [0], 0, 1, 16, 0), pos[:, 0])
    bad = random_probes("carry", [0], 0, 1, 16, 0)
    bad[0].append(bad[0][0])
    with pytest.raises(ValueError, match="repeat"):
        FeatureAblation.from_probes(bad, pos)


# -- evaluation and decoding --------------------------------------------------------------------

def reference_eval(model, ex, hooks_for=None):
    """Independent: per-token CE by loops and full-recompute greedy decoding (no cache)."""
    ids = torch.as_tensor(ex.ids).long()
    hooks = None if hooks_for is None else hooks_for(np.arange(len(ex)), "cpu")
    losses, generated = [], ids.clone()
    with torch.no_grad():
        logits = model(ids, hooks)
        for i in range(len(ex)):
            scored = [t for t in range(1, ids.shape[1]) if ex.loss_mask[i, t]]
            losses.append(np.mean([F.cross_entropy(logits[i, t - 1], ids[i, t]).item()
                                   for t in scored]))
        eq = ex.loss_mask.argmax(1)
        for pos in range(int(eq.min()), ids.shape[1]):
            guess = model(generated[:, :pos], hooks)[:, -1].argmax(-1)
            generated[:, pos] = torch.where(torch.as_tensor(pos < eq), ids[:, pos], guess)
    return np.array(losses), generated


def own_answers(model, ex):
    """The examples with their answers replaced by the model's own greedy output, so the plain
    model scores 1.0 and any change of decoding shows up as an error."""
    eq = ex.loss_mask.argmax(1)
    gen = greedy_decode(model, torch.as_tensor(ex.ids), eq).numpy().astype(np.uint8)
    out = type(ex)(np.where(ex.loss_mask == 1, gen, ex.ids), ex.loss_mask, ex.keys, ex.features)
    return out


def test_evaluate_matches_reference_and_identity_changes_nothing(graphs_dir):
    task = get_task("graph_path", 6, graphs_dir=graphs_dir)  # ragged answers, per-row '='
    rng = np.random.default_rng(2)
    ex = task.generate(rng.integers(0, task.space_size, 16).astype(np.uint64),
                       rng.integers(0, 2**63, 16).astype(np.uint64))
    assert len(set(ex.loss_mask.sum(1))) > 1 and len(set(ex.loss_mask.argmax(1))) > 1
    model = tiny_model(task)
    plain = evaluate(model, ex, batch_size=6)
    loss, generated = reference_eval(model, ex)
    np.testing.assert_allclose(plain.loss, loss, rtol=1e-5)
    truth = torch.as_tensor(ex.ids)
    np.testing.assert_array_equal(plain.correct,
                                  exact_match(generated, truth, torch.as_tensor(ex.loss_mask)))
    mine = own_answers(model, ex)
    assert evaluate(model, mine).correct.all()
    same = evaluate(model, ex, Identity(len(ex)))
    np.testing.assert_array_equal(same.loss, plain.loss)
    np.testing.assert_array_equal(same.correct, plain.correct)
    with pytest.raises(ValueError, match="built for"):
        evaluate(model, ex, Identity(3))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, ex, batch_size=0)


def test_ablation_acts_during_greedy_decoding(addition, model):
    task, ex, _, _ = addition
    mine = own_answers(model, ex)
    labels = mine.features["retrieve_first_op"]  # rows at '=' and the sum tokens
    ablation = FeatureAblation.from_probes(
        random_probes("retrieve_first_op", range(BITS), 0, 1, 16, seed=4, bias=20.0),
        labels.positions)
    calls = []

    class Counter(Intervention):
        n_examples = len(mine)

        def hooks(self, rows, device):
            return {resid_post(0): lambda x, start: calls.append((start, x.shape[1]))}

    ablated = evaluate(model, mine, [ablation, Counter()])
    eq = 2 * BITS + 1
    # one teacher-forced call, one prompt call, then one call per decoded position
    assert calls == [(0, task.seq_len), (0, eq)] + [(p, 1) for p in range(eq, task.seq_len - 1)]
    loss, generated = reference_eval(model, mine, ablation.hooks)
    np.testing.assert_allclose(ablated.loss, loss, rtol=1e-5)
    cached = greedy_decode(model, torch.as_tensor(mine.ids), mine.loss_mask.argmax(1),
                           ablation.hooks(np.arange(len(mine)), "cpu"))
    assert torch.equal(cached, generated)
    np.testing.assert_array_equal(
        ablated.correct, exact_match(generated, torch.as_tensor(mine.ids),
                                     torch.as_tensor(mine.loss_mask)).numpy())
    assert ablated.correct.mean() < 0.9  # the decode really changed (plain model scores 1.0)


# -- random controls ----------------------------------------------------------------------------

def test_random_control_matches_displacement_and_is_seeded(addition, model):
    task, ex, _, _ = addition
    labels = ex.features["carry"]
    V, layer = 3, 1
    selected = random_probes("carry", range(BITS), layer, V, 16, seed=11)
    ablation = FeatureAblation.from_probes(selected, labels.positions)
    control = RandomControl(ablation, seed=7, trial=2)
    before, after = before_after(model, ex, control, layer)
    n = np.arange(len(ex))
    for k, (r, (probe,)) in enumerate(selected.items()):
        x = before[n, labels.positions[:, r]]
        moved = (after[n, labels.positions[:, r]] - x).numpy()
        real = (project(x, probe.W, probe.b) - x).numpy()
        np.testing.assert_allclose(np.linalg.norm(moved, axis=1), np.linalg.norm(real, axis=1),
                                   rtol=1e-4)
        # moves span a random 3-dim subspace, not the probe's row space
        assert np.linalg.matrix_rank(moved, tol=1e-3 * np.abs(moved).max()) == V
        basis = np.linalg.qr(probe.W.T.astype(np.float64))[0]
        inside = np.linalg.norm(moved @ basis, axis=1) / np.linalg.norm(moved, axis=1)
        assert inside.mean() < 0.9
    changed = (after != before).any(-1).numpy()
    assert (np.flatnonzero(changed.any(0)) == np.unique(labels.positions)).all()
    # seeded: same (seed, trial) -> same directions and results; another trial differs
    again = RandomControl(ablation, seed=7, trial=2)
    other = RandomControl(ablation, seed=7, trial=3)
    for c, d in zip(control.coefs + control.bases, again.coefs + again.bases):
        np.testing.assert_array_equal(c, d)
    assert not np.allclose(control.bases[0], other.bases[0])
    e1, e2 = evaluate(model, ex, control), evaluate(model, ex, again)
    np.testing.assert_array_equal(e1.loss, e2.loss)


def test_reference_control_keeps_the_probe_offset_with_random_unit_rows(addition, model):
    """§8: at every target the reference control projects x onto {r·z + b̂ = 0} with a random
    unit r, shared by all examples, and the probe's own offset b̂ = b/||w||."""
    task, ex, _, _ = addition
    labels = ex.features["carry"]
    layer = 1
    selected = random_probes("carry", range(BITS), layer, 1, 16, seed=12)
    ablation = FeatureAblation.from_probes(selected, labels.positions)
    control = ReferenceControl(ablation, seed=7, trial=2)
    before, after = before_after(model, ex, control, layer)
    n = np.arange(len(ex))
    shifts = []
    for k, (r, (probe,)) in enumerate(selected.items()):
        x = before[n, labels.positions[:, r]].numpy()
        moved = after[n, labels.positions[:, r]].numpy() - x
        # one direction for all examples: the moves have rank 1; that direction is the row
        assert np.linalg.matrix_rank(moved, tol=1e-4 * np.abs(moved).max()) == 1
        unit = control.projectors[k].W[0]
        assert np.linalg.norm(unit) == pytest.approx(1.0)
        direction = moved[np.argmax(np.linalg.norm(moved, axis=1))]
        assert abs(direction @ unit) == pytest.approx(np.linalg.norm(direction), rel=1e-5)
        # the probe's offset, normalised by its own weight norm, is kept
        w_norm = np.linalg.norm(probe.W.astype(np.float64))
        b_hat = float(probe.b[0]) / w_norm
        assert control.projectors[k].b[0] == pytest.approx(b_hat, rel=1e-6)
        # x' = x - (r·x + b̂) r: the component along r becomes -b̂, the rest is kept
        np.testing.assert_allclose(moved, -np.outer(x @ unit + b_hat, unit), atol=1e-4)
        np.testing.assert_allclose((x + moved) @ unit, -b_hat, atol=1e-4)
        # a random direction, not the probe's
        assert abs(unit @ probe.W[0] / w_norm) < 0.9
        shifts.append(np.abs(x @ unit + b_hat).mean())
    # displacement_norms reports its shift next to the ablation's
    norms = displacement_norms(model, ex, ablation, batch_size=20, others=[control])
    np.testing.assert_allclose(norms[:, 2], shifts, rtol=1e-5)
    np.testing.assert_allclose(norms[:, :2], displacement_norms(model, ex, ablation), rtol=1e-12)
    changed = (after != before).any(-1).numpy()
    assert (np.flatnonzero(changed.any(0)) == np.unique(labels.positions)).all()
    # seeded: the same (seed, trial) gives the same rows and results, built alone or in a loop;
    # another trial, another seed or the matched control's stream give others
    loop = [ReferenceControl(ablation, seed=7, trial=t) for t in range(3)]
    for c in (ReferenceControl(ablation, seed=7, trial=2), loop[2]):
        for p, q in zip(c.projectors, control.projectors):
            np.testing.assert_array_equal(p.W, q.W)
            np.testing.assert_array_equal(p.b, q.b)
    for other in (loop[1], ReferenceControl(ablation, seed=8, trial=2)):
        assert not np.allclose(other.projectors[0].W, control.projectors[0].W)
    matched = RandomControl(ablation, seed=7, trial=2)
    assert abs(matched.bases[0][:, 0] @ control.projectors[0].W[0]) < 0.9
    e1, e2 = evaluate(model, ex, control), evaluate(model, ex, loop[2])
    np.testing.assert_array_equal(e1.loss, e2.loss)
    np.testing.assert_array_equal(e1.correct, e2.correct)


@pytest.mark.parametrize("V", [3, 5])
def test_reference_control_multi_row_zeroes_its_random_logits(addition, model, V):
    """V > 1: V random unit rows (the probe's row count) with the probe's offsets; the exact
    projection leaves every random logit at 0 (the reference's summed steps would not)."""
    task, ex, _, _ = addition
    labels = ex.features["carry"]
    selected = random_probes("carry", range(BITS), 0, V, 16, seed=V)
    ablation = FeatureAblation.from_probes(selected, labels.positions)
    control = ReferenceControl(ablation, seed=1, trial=0)
    before, after = before_after(model, ex, control, 0)
    n = np.arange(len(ex))
    for k, (r, (probe,)) in enumerate(selected.items()):
        R, b_hat = control.projectors[k].W, control.projectors[k].b
        assert R.shape == (V, 16) and np.allclose(np.linalg.norm(R, axis=1), 1.0)
        W = probe.W.astype(np.float64)
        np.testing.assert_allclose(b_hat, probe.b / np.linalg.norm(W, axis=1), rtol=1e-6)
        x = after[n, labels.positions[:, r]].numpy()
        assert np.abs(x @ R.T + b_hat).max() < 1e-4
        moved = x - before[n, labels.positions[:, r]].numpy()
        assert np.linalg.matrix_rank(moved, tol=1e-4 * np.abs(moved).max()) == V


def test_reference_control_of_a_softmax_probe_keeps_the_centred_offsets():
    """One-hot probes: the control keeps the offsets the ablation uses (centred, normalised)."""
    rng = np.random.default_rng(4)
    W, b = rng.standard_normal((3, 8)), rng.standard_normal(3) + 2.0
    probe = FittedProbe("f", "onehot", 0, 0, W, b, None, 0.1, 0.2)
    ablation = FeatureAblation.from_probes({0: [probe]}, np.zeros((5, 1), np.int64))
    control = ReferenceControl(ablation, seed=0, trial=0)
    Wc, bc = W - W.mean(0), b - b.mean()
    np.testing.assert_allclose(control.projectors[0].b, bc / np.linalg.norm(Wc, axis=1),
                               rtol=1e-12)
    np.testing.assert_allclose(control.projectors[0].b, ablation.targets[0].projector.b,
                               rtol=1e-12)
    assert control.projectors[0].W.shape == (3, 8)


def test_reference_control_ragged_rows(graphs_dir):
    """graph_path `queue`: only each example's present rows are edited."""
    task = get_task("graph_path", 6, graphs_dir=graphs_dir)
    rng = np.random.default_rng(6)
    ex = task.generate(rng.integers(0, task.space_size, 30).astype(np.uint64),
                       rng.integers(0, 2**63, 30).astype(np.uint64))
    model = tiny_model(task, d=16)
    positions = ex.features["queue"].positions
    assert (positions == -1).any()
    selected = random_probes("queue", range(positions.shape[1]), 1, 2, 16, seed=3)
    ablation = FeatureAblation.from_probes(selected, positions)
    name = resid_post(1)
    base = chain_capture(model, ex, [], [name])[name]
    after = chain_capture(model, ex, [ReferenceControl(ablation, 0, 5)], [name])[name]
    changed = (after != base).any(-1).numpy()
    for i in range(len(ex)):
        present = positions[i][positions[i] >= 0]
        assert sorted(np.flatnonzero(changed[i])) == sorted(present.tolist())


# -- statistics and results ----------------------------------------------------------------------

def test_bootstrap_seeded_and_calibrated():
    counts = bootstrap_counts(400, 2000, seed=3)
    assert counts.shape == (2000, 400) and (counts.sum(1) == 400).all()
    assert np.array_equal(counts, bootstrap_counts(400, 2000, seed=3))
    assert not np.array_equal(counts, bootstrap_counts(400, 2000, seed=4))
    values = (np.arange(400) % 2).astype(float)  # mean 0.5, sd 0.5
    lo, hi = np.percentile(counts @ values / 400, [2.5, 97.5])
    assert (hi - lo) / 2 == pytest.approx(1.96 * 0.5 / math.sqrt(400), rel=0.12)


def test_summarise_known_values():
    n = 50
    ones, zeros = np.ones(n, bool), np.zeros(n, bool)
    half = np.arange(n) % 2 == 0
    base = Evaluation(np.full(n, 0.1), ones)
    abl = Evaluation(np.full(n, 2.0), zeros)
    controls = [Evaluation(np.full(n, 0.3), half), Evaluation(np.full(n, 0.5), ~half)]
    s = summarise(base, abl, controls, n_boot=200, seed=1)
    assert s["baseline"]["acc"] == 1.0 and s["ablated"]["acc"] == 0.0
    assert s["baseline"]["acc_ci"] == [1.0, 1.0]
    assert s["control"]["acc"] == 0.5 and s["control"]["acc_ci"] == [0.5, 0.5]  # 0.5 everywhere
    assert s["control"]["trial_acc"] == [0.5, 0.5] and s["control"]["loss"] == pytest.approx(0.4)
    assert s["drop"] == {"abs": 1.0, "abs_ci": [1.0, 1.0], "rel": 1.0, "rel_ci": [1.0, 1.0]}
    assert s["drop_beyond_control"] == {"abs": 0.5, "abs_ci": [0.5, 0.5]}
    assert s["control_drop"] == {"abs": 0.5, "abs_ci": [0.5, 0.5], "rel": 0.5,
                                 "rel_ci": [0.5, 0.5]}
    assert s["ablated"]["loss"] == pytest.approx(2.0)
    # random per-example outcomes: CIs cover the estimate, reproducible from the seed
    rng = np.random.default_rng(0)
    mixed = Evaluation(rng.random(n), rng.random(n) < 0.7)
    s1 = summarise(mixed, abl, controls, n_boot=300, seed=5)
    assert s1 == summarise(mixed, abl, controls, n_boot=300, seed=5)
    lo, hi = s1["baseline"]["acc_ci"]
    assert lo <= s1["baseline"]["acc"] <= hi and lo < hi
    assert s1["drop"]["rel"] == pytest.approx(1.0)
    none = summarise(Evaluation(np.ones(n), zeros), abl, controls, n_boot=50)
    assert none["drop"]["rel"] is None and none["drop"]["rel_ci"] == [None, None]
    # no trials: the control's groups are None; the reference control's groups mirror the
    # matched one's for the same trials
    bare = summarise(base, abl, n_boot=50)
    for group in ("control", "control_drop", "drop_beyond_control", "ref_control",
                  "ref_control_drop", "drop_beyond_ref_control"):
        assert bare[group] is None
    assert "control_loss" not in bare["per_example"]
    both = summarise(base, abl, controls, [controls[0]], n_boot=200, seed=1)
    assert both["control"] == s["control"]
    assert both["ref_control"]["acc"] == 0.5 and both["ref_control"]["trial_acc"] == [0.5]
    assert both["ref_control"]["loss"] == pytest.approx(0.3)
    # one trial: per example 0 or 1, so the CIs have width (paired with the same resamples)
    drop = both["ref_control_drop"]
    assert drop["abs"] == 0.5 and drop["rel"] == 0.5 and drop["abs_ci"] == drop["rel_ci"]
    assert drop["abs_ci"][0] < 0.5 < drop["abs_ci"][1]
    beyond = both["drop_beyond_ref_control"]
    assert beyond["abs"] == 0.5
    assert beyond["abs_ci"] == pytest.approx([1 - v for v in drop["abs_ci"][::-1]])
    assert both["per_example"]["ref_control_correct_rate"] == half.astype(float).tolist()
    with pytest.raises(ValueError, match="same 50 examples"):
        summarise(base, Evaluation(np.ones(49), np.ones(49, bool)), controls)


def first(ex, n):
    return Examples(ex.ids[:n], ex.loss_mask[:n], ex.keys[:n],
                    {k: FeatureLabels(v.positions[:n], v.labels[:n], v.kind)
                     for k, v in ex.features.items()})


def test_ablate_selected_result_and_summary_table(addition, model, tmp_path):
    task, ex, _, _ = addition
    ex = first(ex, 20)
    selected = random_probes("carry", range(BITS), 1, 1, 16, seed=2)
    selected[1].append(Probe("carry", "binary", 0, 1, np.ones((1, 16), np.float32),
                             np.zeros(1, np.float32)))
    result = ablate_selected(model, task, ex, "carry", selected, n_random=3, seed=1, n_boot=100)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert result["rows"] == list(range(BITS)) and result["layers"] == [0, 1]
    assert [(t["row"], t["layer"]) for t in result["targets"]] == [
        (0, 1), (1, 1), (1, 0), (2, 1), (3, 1)]
    assert result["n_examples"] == len(ex) and len(result["control"]["trial_acc"]) == 3
    assert len(result["ref_control"]["trial_acc"]) == 3
    assert len(result["per_example"]["ablated_loss"]) == len(ex)
    assert len(result["per_example"]["ref_control_loss"]) == len(ex)
    assert result["k"] == 2 and result["kind"] == "binary"
    assert set(result["provenance"]) == set(PROVENANCE_COLUMNS)
    plain = evaluate(model, ex)
    assert result["baseline"]["acc"] == plain.correct.mean()
    assert result["baseline"]["loss"] == pytest.approx(plain.loss.mean())
    # the reference control's mean shift: the mean over trials of its projection distance
    ablation = FeatureAblation.from_probes(selected, ex.features["carry"].positions)
    refs = [ReferenceControl(ablation, 1, t) for t in range(3)]
    norms = displacement_norms(model, ex, ablation, others=refs)
    assert [t["ref_control_mean_shift"] for t in result["targets"]] == pytest.approx(
        norms[:, 2:].mean(1).tolist())
    again = ablate_selected(model, task, ex, "carry", selected, n_random=3, seed=1, n_boot=100)
    assert again == result
    # a shared baseline gives the same result; no trials: no controls
    shared = ablate_selected(model, task, ex, "carry", selected, n_random=3, seed=1, n_boot=100,
                             baseline=plain)
    assert shared == result
    bare = ablate_selected(model, task, ex, "carry", selected, n_random=0, seed=1, n_boot=100)
    assert bare["control"] is None and bare["ref_control"] is None
    assert bare["ablated"] == result["ablated"] and bare["ref_control_shift_ratio"] is None
    table = summary_table([{**result, "budget": 1e12, "train_seed": 0},
                           {**result, "feature": "x", "train_seed": 0}])
    assert list(table.feature) == ["carry", "x"] and table.budget.iloc[0] == 1e12
    for col in ["task", "size", "train_seed", "k", "baseline_acc", "baseline_acc_lo",
                "ablated_acc_hi", "control_acc", "drop_abs", "drop_rel_lo",
                "drop_beyond_control_abs_hi", "ref_control_acc", "ref_control_acc_lo",
                "ref_control_drop_abs_hi", "ref_control_drop_rel", "control_drop_rel",
                "drop_beyond_ref_control_abs", "drop_beyond_ref_control_abs_lo",
                "targets", "layers", "shift_ratio", "shift_ratio_min", "shift_ratio_max",
                "ref_control_shift_ratio", *PROVENANCE_COLUMNS]:
        assert col in table.columns, col
    assert list(table.columns[-len(PROVENANCE_COLUMNS):]) == list(PROVENANCE_COLUMNS)
    assert table.targets.iloc[0] == "0:1 1:1 1:0 2:1 3:1" and table.layers.iloc[0] == "0 1"
    ratios = [t["mean_shift"] / t["mean_norm"] for t in result["targets"]]
    assert table.shift_ratio_min.iloc[0] == pytest.approx(min(ratios))
    assert table.shift_ratio_max.iloc[0] == pytest.approx(max(ratios))
    assert table.drop_abs.iloc[0] == pytest.approx(result["baseline"]["acc"]
                                                   - result["ablated"]["acc"])
    assert table.drop_beyond_ref_control_abs.iloc[0] == pytest.approx(
        result["ref_control"]["acc"] - result["ablated"]["acc"])
    assert table.git_commit.iloc[0] == result["provenance"]["git_commit"]
    table.to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(ValueError, match="train_seed"):
        summary_table([result])
    with pytest.raises(ValueError, match="provenance"):
        summary_table([{k: v for k, v in result.items() if k != "provenance"} | {"train_seed": 0}])
    with pytest.raises(ValueError, match="repeat"):
        summary_table([{**result, "train_seed": 0}] * 2)
    with pytest.raises(ValueError, match="no labels"):
        ablate_selected(model, task, task.encode(np.arange(3), np.arange(3), features=False),
                        "carry", selected, n_random=1)
    with pytest.raises(ValueError, match="n_random"):
        ablate_selected(model, task, ex, "carry", selected, n_random=-1)
    with pytest.raises(ValueError, match="no feature"):
        ablate_selected(model, task, ex, "queue", selected)
    with pytest.raises(ValueError, match="baseline has 3"):
        ablate_selected(model, task, ex, "carry", selected, n_random=0,
                        baseline=Evaluation(np.zeros(3), np.zeros(3, bool)))
    with pytest.raises(ValueError, match="no ablation results"):
        summary_table([])


def layered_probes(seed, layers=2, rows=BITS, d=16):
    """Random carry probes at every (row, layer) with random train losses, plus one of another
    feature; returns (probes, losses[(row, layer)])."""
    rng = np.random.default_rng(seed)
    losses = {(r, l): float(rng.random()) for r in range(rows) for l in range(layers)}
    probes = [FittedProbe("carry", "binary", l, r, rng.standard_normal((1, d)).astype(np.float32),
                          np.full(1, 2.0, np.float32), None, losses[r, l], 0.5)
              for (r, l) in losses]
    probes.append(FittedProbe("retrieve_first_op", "binary", 0, 0, np.ones((1, d), np.float32),
                              np.zeros(1, np.float32), None, 0.0, 0.0))
    return probes, losses


def test_ablate_feature_picks_the_best_layers(addition, model):
    task, ex, _, _ = addition
    ex = first(ex, 12)
    probes, losses = layered_probes(8)
    result = ablate_feature(model, task, ex, probes, "carry", top_k=1, n_random=1, n_boot=50)
    assert result["top_k"] == [1] and len(result["by_k"]) == 1
    (one,) = result["by_k"]
    best = [(r, min((0, 1), key=lambda l: losses[r, l])) for r in range(BITS)]
    assert [(t["row"], t["layer"]) for t in one["targets"]] == best
    assert [t["train_loss"] for t in one["targets"]] == [losses[rl] for rl in best]
    two = ablate_feature(model, task, ex, probes, "carry", top_k=[2], control_top_k=[2],
                         n_random=1, n_boot=50)["by_k"][0]
    assert two["k"] == 2 and len(two["targets"]) == 2 * BITS and two["layers"] == [0, 1]
    # per row the best layer first
    assert [t["train_loss"] for t in two["targets"]] == [
        losses[r, l] for r in range(BITS) for l in sorted((0, 1), key=lambda l: losses[r, l])]
    with pytest.raises(ValueError, match="no probes"):
        ablate_feature(model, task, ex, probes[:2], "retrieve_first_op", n_random=1)
    with pytest.raises(ValueError, match="top_k"):
        ablate_feature(model, task, ex, probes, "carry", top_k=0)


def test_top_k_sweep_shares_the_baseline_and_runs_controls_where_asked(addition, model,
                                                                       monkeypatch):
    task, ex, _, _ = addition
    ex = first(ex, 16)
    probes, losses = layered_probes(3)
    calls = []
    real = ablations.evaluate

    def counting(model, examples, interventions=None, batch_size=ablations.DEFAULT_BATCH):
        calls.append(type(interventions).__name__)
        return real(model, examples, interventions, batch_size)

    monkeypatch.setattr(ablations, "evaluate", counting)
    result = ablate_feature(model, task, ex, probes, "carry", n_random=2, seed=4, n_boot=60)
    # default: every k of the 2-layer model, controls at k = 1 only; one baseline for all k
    assert result["top_k"] == [1, 2] and result["control_top_k"] == [1]
    assert [e["k"] for e in result["by_k"]] == [1, 2]
    assert calls.count("NoneType") == 1
    assert calls.count("RandomControl") == 2 and calls.count("ReferenceControl") == 2
    k1, k2 = result["by_k"]
    assert k1["baseline"] == k2["baseline"]
    assert k1["control"] is not None and k1["ref_control"] is not None and k1["n_random"] == 2
    assert k2["control"] is None and k2["ref_control"] is None and k2["n_random"] == 0
    assert len(k2["targets"]) == 2 * BITS
    # each k is the ablation of its own selection, as computed alone
    from qlf.probes import best_layers
    alone = ablate_selected(model, task, ex, "carry", best_layers(probes, "carry", k=2),
                            n_random=0, seed=4, n_boot=60)
    assert {**alone, "provenance": None} == {**k2, "provenance": None}
    monkeypatch.setattr(ablations, "evaluate", real)
    # all ks with controls: the k = 1 entry is unchanged
    full = ablate_feature(model, task, ex, probes, "carry", top_k="all", control_top_k="all",
                          n_random=2, seed=4, n_boot=60)
    assert full["by_k"][0] == k1 and full["by_k"][1]["control"] is not None
    # the summary: one row per k, control columns empty where not run; targets: one per target
    table = summary_table([{**result, "train_seed": 3, "budget": 1e9}])
    assert list(table.k) == [1, 2] and set(table.train_seed) == {3}
    assert table.budget.tolist() == [1e9, 1e9] and table.n_layers.tolist() == [2, 2]
    assert np.isnan(table.control_acc.iloc[1]) and np.isnan(table.ref_control_drop_rel_lo.iloc[1])
    assert not np.isnan(table.ref_control_acc.iloc[0])
    targets = targets_table([{**result, "train_seed": 3}])
    assert len(targets) == BITS + 2 * BITS
    assert list(targets.columns[:4]) == ["task", "size", "train_seed", "feature"]
    assert (targets.groupby(["k", "row"]).layer_rank.max() == targets.groupby(["k", "row"])
            .size()).all()
    assert np.allclose(targets.ratio, targets.mean_shift / targets.mean_norm)
    best = targets[targets.layer_rank == 1]
    for (k, r), rows in best.groupby(["k", "row"]):
        assert rows.layer.item() == min((0, 1), key=lambda l: losses[r, l])
    assert targets[targets.k == 2].ref_control_mean_shift.isna().all()
    assert targets[targets.k == 1].ref_control_mean_shift.notna().all()
    for col in PROVENANCE_COLUMNS:
        assert col in targets.columns
    with pytest.raises(ValueError, match="subset"):
        ablate_feature(model, task, ex, probes, "carry", top_k=[2], n_random=1)
    with pytest.raises(ValueError, match=r"1\.\.2"):
        ablate_feature(model, task, ex, probes, "carry", top_k=[3], n_random=1)
    missing = [p for p in probes if not (p.row == 1 and p.layer == 0)]
    with pytest.raises(ValueError, match="fewer probes"):
        ablate_feature(model, task, ex, missing, "carry", top_k="all", n_random=1)


@pytest.mark.parametrize("value, expected", [("all", [1, 2, 3, 4]), (2, [2]), ([3, 1], [1, 3]),
                                             ((4,), [4])])
def test_resolve_top_k(value, expected):
    assert resolve_top_k(value, 4) == expected


@pytest.mark.parametrize("value", [0, 5, -1, True, 1.0, "best", "", [], [1, 1], [1, "2"],
                                   None, {1: 1}])
def test_resolve_top_k_rejects(value):
    with pytest.raises(ValueError, match="top_k"):
        resolve_top_k(value, 4)


def test_across_seeds_aggregates_per_task_feature_and_k():
    rng = np.random.default_rng(0)
    rows = []
    for seed in (2, 0, 1):
        for k in (1, 2):
            drop = rng.random()
            row = {"task": "addition", "size": 4, "feature": "carry", "k": k, "train_seed": seed,
                   "git_commit": "abc", "threads": 1 + (seed == 2)}
            for stat in ablations._SEED_STATS + ["drop_rel", "drop_abs"]:
                row[stat] = np.nan if ("control" in stat and k == 2) else rng.random()
                row[stat + "_lo"], row[stat + "_hi"] = row[stat] - 0.1, row[stat] + 0.1
            row["drop_rel"] = drop
            rows.append(row)
    table = pd.DataFrame(rows)
    out = across_seeds(table)
    assert list(out[["task", "feature", "k"]].itertuples(index=False, name=None)) == [
        ("addition", "carry", 1), ("addition", "carry", 2)]
    assert out.n_seeds.tolist() == [3, 3] and out.train_seeds.tolist() == ["0 1 2"] * 2
    for k, got in zip((1, 2), out.itertuples()):
        mine = table[table.k == k].sort_values("train_seed")
        for stat in ["drop_rel", "drop_abs", "control_drop_abs", "ref_control_drop_rel",
                     "drop_beyond_ref_control_abs", "ablated_acc"]:
            v = mine[stat].to_numpy()
            for agg, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
                want = fn(v)
                assert (np.isnan(want) and np.isnan(getattr(got, f"{stat}_{agg}"))) or \
                    getattr(got, f"{stat}_{agg}") == pytest.approx(want)
        parts = got.per_seed_drop_rel.split("; ")
        assert [p.split()[0] for p in parts] == ["s0", "s1", "s2"]
        s0 = mine.iloc[0]
        assert parts[0] == (f"s0 {s0.drop_rel:.3f} [{s0.drop_rel_lo:.3f}, "
                            f"{s0.drop_rel_hi:.3f}]")
        assert got.per_seed_drop_abs.startswith(f"s0 {s0.drop_abs:.3f} [")
    assert out.git_commit.tolist() == ["abc", "abc"]
    assert set(out.threads) == {"1; 2"}  # seeds disagree: their values joined (seed order)
    for col in ("task", "feature", "k", "n_seeds", "drop_rel_mean", "drop_rel_min",
                "drop_rel_max"):
        assert col in out.columns
    with pytest.raises(ValueError, match="repeats"):
        across_seeds(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks columns"):
        across_seeds(table.drop(columns="ref_control_drop_abs"))
    with pytest.raises(ValueError, match="empty"):
        across_seeds(table.iloc[:0])
