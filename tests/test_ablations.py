"""qlf.ablations: the projection operator, where and when it acts, random controls, evaluation,
bootstrap statistics and the result/summary formats. Tiny random models; the end-to-end check on a
trained model is bench/bench_ablation_addition.py."""
import json
import math

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qlf.ablations import (Evaluation, FeatureAblation, Intervention, Projector, RandomControl,
                           _combined, ablate_selected, bootstrap_counts, displacement_norms,
                           evaluate, project, resid_post, summarise, summary_table)
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
    name = resid_post(layer)
    before = chain_capture(model, ex, [], [name])[name].double()
    after = chain_capture(model, ex, [control], [name])[name].double()
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
    with pytest.raises(ValueError, match="control"):
        summarise(base, abl, [])
    with pytest.raises(ValueError, match="same 50 examples"):
        summarise(base, Evaluation(np.ones(49), np.ones(49, bool)), controls)


def test_ablate_selected_result_and_summary_table(addition, model, tmp_path):
    task, ex, _, _ = addition
    ex = Examples(ex.ids[:20], ex.loss_mask[:20], ex.keys[:20],
                  {k: FeatureLabels(v.positions[:20], v.labels[:20], v.kind)
                   for k, v in ex.features.items()})
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
    assert len(result["per_example"]["ablated_loss"]) == len(ex)
    assert result["k"] == 2 and result["kind"] == "binary"
    plain = evaluate(model, ex)
    assert result["baseline"]["acc"] == plain.correct.mean()
    assert result["baseline"]["loss"] == pytest.approx(plain.loss.mean())
    again = ablate_selected(model, task, ex, "carry", selected, n_random=3, seed=1, n_boot=100)
    assert again == result
    table = summary_table([{**result, "budget": 1e12}, {**result, "feature": "x"}])
    assert list(table.feature) == ["carry", "x"] and table.budget.iloc[0] == 1e12
    for col in ["task", "size", "baseline_acc", "baseline_acc_lo", "ablated_acc_hi",
                "control_acc", "drop_abs", "drop_rel_lo", "drop_beyond_control_abs_hi",
                "targets", "shift_ratio"]:
        assert col in table.columns
    assert table.targets.iloc[0] == "0:1 1:1 1:0 2:1 3:1"
    assert table.drop_abs.iloc[0] == pytest.approx(result["baseline"]["acc"]
                                                   - result["ablated"]["acc"])
    table.to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(ValueError, match="no labels"):
        ablate_selected(model, task, task.encode(np.arange(3), np.arange(3), features=False),
                        "carry", selected, n_random=1)
    with pytest.raises(ValueError, match="n_random"):
        ablate_selected(model, task, ex, "carry", selected, n_random=0)
    with pytest.raises(ValueError, match="no feature"):
        ablate_selected(model, task, ex, "queue", selected)
    with pytest.raises(ValueError, match="no ablation results"):
        summary_table([])


def test_ablate_feature_picks_the_best_layers(addition, model):
    from qlf.ablations import ablate_feature
    task, ex, _, _ = addition
    ex = Examples(ex.ids[:12], ex.loss_mask[:12], ex.keys[:12],
                  {k: FeatureLabels(v.positions[:12], v.labels[:12], v.kind)
                   for k, v in ex.features.items()})
    rng = np.random.default_rng(8)
    losses = {(r, l): float(rng.random()) for r in range(BITS) for l in range(2)}
    probes = [FittedProbe("carry", "binary", l, r, rng.standard_normal((1, 16)).astype(np.float32),
                          np.zeros(1, np.float32), None, losses[r, l], 0.5)
              for (r, l) in losses]
    probes.append(FittedProbe("retrieve_first_op", "binary", 0, 0, np.ones((1, 16), np.float32),
                              np.zeros(1, np.float32), None, 0.0, 0.0))
    result = ablate_feature(model, task, ex, probes, "carry", k=1, n_random=1, n_boot=50)
    best = [(r, min((0, 1), key=lambda l: losses[r, l])) for r in range(BITS)]
    assert [(t["row"], t["layer"]) for t in result["targets"]] == best
    assert [t["train_loss"] for t in result["targets"]] == [losses[rl] for rl in best]
    two = ablate_feature(model, task, ex, probes, "carry", k=2, n_random=1, n_boot=50)
    assert two["k"] == 2 and len(two["targets"]) == 2 * BITS and two["layers"] == [0, 1]
    with pytest.raises(ValueError, match="no probes"):
        ablate_feature(model, task, ex, probes[:2], "retrieve_first_op", n_random=1)
    with pytest.raises(ValueError, match="k must be"):
        ablate_feature(model, task, ex, probes, "carry", k=0)
