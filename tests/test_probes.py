"""qlf.probes: activations at feature positions, probe fitting, files, quiet/loud decision.

Every expected number comes from an independent computation: sklearn fitted here, Python ints,
a full-sequence capture, or hand-built synthetic curves.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, mean_squared_error, r2_score

from qlf import probes
from qlf.data import Layout, Stream
from qlf.model import ModelConfig, Transformer, capture, masked_loss_per_example
from qlf.probes import (FittedProbe, best_layers, bootstrap_ci, classify_features, fit_probe,
                        group_effects, iter_activations, load_probes, plan_passes, position_groups,
                        probe_model, random_baselines, save_probes)
from qlf.tasks import TASKS, get_task
from qlf.tasks.binary import Addition

SIZES = {"graph_eulerian_circuit": 7, "addition": 4, "multiplication": 4, "majority_of_majority": 4, "maximum_subarray": 6,
         "activity_selection": 4}  # graph tasks: 5 nodes


def gaussian(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


def tiny_model(task, d=8, layers=2, seed=0):
    torch.manual_seed(seed)
    return Transformer(ModelConfig(task.vocab_size, task.seq_len, d, layers, 2))


def small_split(task, n, seed):
    rng = np.random.default_rng(seed)
    space = min(task.space_size, 2**62)  # 5-node graphs: 21 classes, so repeats are allowed
    index = rng.choice(space, size=n, replace=n > space).astype(np.uint64)
    return task.generate(index, rng.integers(0, 2**63, n).astype(np.uint64))


# -- fitting one probe --------------------------------------------------------------------------

def test_planted_linear_feature_is_recovered_and_xor_is_not():
    X = gaussian(800, 6, 0)
    w = np.array([1.0, -2.0, 0.5, 0, 0, 0])
    y = (X @ w > 0).astype(int)
    fit = fit_probe(X[:600], y[:600], X[600:], y[600:], "binary")
    assert fit["branch"] == "binary" and fit["test_acc"] > 0.95 and fit["test_loss"] < 0.2
    # the stored W, b reproduce the test loss (independent sigmoid + sklearn log_loss)
    p1 = 1 / (1 + np.exp(-(X[600:] @ fit["W"][0] + fit["b"][0])))
    assert fit["test_loss"] == pytest.approx(
        log_loss(y[600:], y_proba=np.c_[1 - p1, p1], labels=[0, 1]), rel=1e-6)
    assert fit["test_losses"].mean() == pytest.approx(fit["test_loss"])
    assert fit["converged"] and 0 < fit["n_iter"] < 1000
    xor = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    fit = fit_probe(X[:600], xor[:600], X[600:], xor[600:], "binary")
    assert 0.35 < fit["test_acc"] < 0.65 and fit["test_loss"] > 0.6


def test_one_class_test_split_and_skips():
    X = gaussian(300, 4, 1)
    y = (X[:, 0] > 0).astype(int)
    ones = np.ones(100, int)  # H4: a test split with a single class
    fit = fit_probe(X[:200], y[:200], X[200:], ones, "binary")
    lr = LogisticRegression(C=100, max_iter=1000).fit(X[:200], y[:200])
    assert fit["test_loss"] == pytest.approx(
        log_loss(ones, y_proba=lr.predict_proba(X[200:]), labels=[0, 1]), rel=1e-6)
    with pytest.raises(probes._Skip, match="single class in train"):
        fit_probe(X[:200], np.zeros(200, int), X[200:], y[200:], "binary")
    with pytest.raises(probes._Skip, match="min_train"):
        fit_probe(X[:5], y[:5], X[200:], y[200:], "binary")
    with pytest.raises(probes._Skip, match="constant"):
        fit_probe(X[:200], np.full(200, 3.0), X[200:], y[200:], "regression")
    with pytest.raises(ValueError, match="0 or 1"):
        fit_probe(X[:200], 2 * y[:200], X[200:], y[200:], "binary")


def test_multilabel_keeps_varying_columns_and_scores_them_on_both_splits():
    X = gaussian(500, 5, 2)
    Y = np.stack([np.ones(500), X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, np.zeros(500),
                  X[:, 3] > 0.5], axis=1).astype(int)
    Y_te = Y[350:].copy()
    Y_te[:, 4] = 0  # H16: a kept column that is all zero in test still counts
    fit = fit_probe(X[:350], Y[:350], X[350:], Y_te, "multilabel")
    assert fit["branch"] == "multilabel" and fit["columns"].tolist() == [1, 2, 4]
    assert fit["W"].shape == (3, 5) and fit["b"].shape == (3,)
    train, test, acc = [], [], []
    for i, j in enumerate([1, 2, 4]):
        lr = LogisticRegression(C=100, max_iter=1000).fit(X[:350], Y[:350, j])
        np.testing.assert_allclose(fit["W"][i], lr.coef_[0], rtol=1e-6, atol=1e-9)
        train.append(log_loss(Y[:350, j], y_proba=lr.predict_proba(X[:350]), labels=[0, 1]))
        test.append(log_loss(Y_te[:, j], y_proba=lr.predict_proba(X[350:]), labels=[0, 1]))
        acc.append((lr.predict(X[350:]) == Y_te[:, j]).mean())
    assert fit["train_loss"] == pytest.approx(np.mean(train), rel=1e-6)
    assert fit["test_loss"] == pytest.approx(np.mean(test), rel=1e-6)
    assert fit["test_acc"] == pytest.approx(np.mean(acc))  # per bit


def test_onehot_rows_take_the_multinomial_branch_with_the_union_of_classes():
    X = gaussian(600, 4, 3)
    cls = np.argmax(X @ np.random.default_rng(4).normal(size=(4, 5)), axis=1)
    cls[:400][cls[:400] == 2] = 0  # class 2 appears in test only (H4)
    assert 2 in cls[400:]
    Y = np.eye(5, dtype=int)[cls]
    fit = fit_probe(X[:400], Y[:400], X[400:], Y[400:], "multilabel")  # one-hot rows
    train_classes = sorted(set(cls[:400]))
    assert fit["branch"] == "onehot" and fit["columns"].tolist() == train_classes
    assert fit["W"].shape == (len(train_classes), 4)
    lr = LogisticRegression(C=100, max_iter=1000).fit(X[:400], cls[:400])
    union = sorted(set(cls))
    proba = np.zeros((200, len(union)))
    proba[:, np.searchsorted(union, lr.classes_)] = lr.predict_proba(X[400:])
    assert fit["test_loss"] == pytest.approx(log_loss(cls[400:], y_proba=proba, labels=union),
                                             rel=1e-6)
    assert fit["test_acc"] == pytest.approx((lr.predict(X[400:]) == cls[400:]).mean())
    # two classes: the stored pair of logits gives sklearn's probabilities
    two = np.eye(3, dtype=int)[np.where(X[:, 0] > 0, 2, 0)]
    fit = fit_probe(X[:400], two[:400], X[400:], two[400:], "onehot")
    assert fit["columns"].tolist() == [0, 2] and fit["W"].shape == (2, 4)
    z = X[400:] @ fit["W"].T + fit["b"]
    soft = np.exp(z - z.max(1, keepdims=True))
    lr = LogisticRegression(C=100, max_iter=1000).fit(X[:400], two[:400].argmax(1))
    np.testing.assert_allclose(soft / soft.sum(1, keepdims=True), lr.predict_proba(X[400:]),
                               atol=1e-8)
    with pytest.raises(ValueError, match="exactly one 1"):
        fit_probe(X[:400], Y[:400] * 0, X[400:], Y[400:], "onehot")


def test_regression_metrics():
    X = gaussian(500, 3, 5)
    noise = np.random.default_rng(6).normal(scale=0.1, size=500)
    y = X @ [2.0, -1.0, 0.5] + 3 + noise
    fit = fit_probe(X[:400], y[:400], X[400:], y[400:], "regression")
    ols = LinearRegression().fit(X[:400], y[:400])
    pred = ols.predict(X[400:])
    assert fit["test_mse"] == pytest.approx(mean_squared_error(y[400:], pred), rel=1e-9)
    assert fit["test_r2"] == pytest.approx(r2_score(y[400:], pred), rel=1e-9)
    assert fit["train_loss"] == fit["train_mse"] and fit["test_loss"] == fit["test_mse"]
    assert fit["test_r2"] > 0.99 and fit["W"].shape == (1, 3)
    np.testing.assert_allclose(fit["test_losses"], (pred - y[400:]) ** 2)


# -- activations -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TASKS))
def test_activations_at_feature_positions_match_a_full_capture(name, graphs_dir):
    task = get_task(name, SIZES.get(name, 5), graphs_dir=graphs_dir)
    ex = small_split(task, 10, seed=7)
    model = tiny_model(task, layers=3)
    names = [f.name for f in task.features]
    full = capture(model, ex.ids, [f"blocks.{l}.hook_resid_post" for l in range(3)])
    passes = iter_activations(model, {"probe_train": ex}, names, batch_size=4)
    p = next(passes)
    assert p.layers == (0, 1, 2) and set(p.features) == set(names)
    for f in names:
        pos = ex.features[f].positions
        for layer in range(3):
            for r in range(pos.shape[1]):
                idx, X = p.vectors("probe_train", f, layer, r)
                np.testing.assert_array_equal(idx, np.flatnonzero(pos[:, r] >= 0))
                want = full[f"blocks.{layer}.hook_resid_post"][idx, pos[idx, r]].numpy()
                np.testing.assert_allclose(X, want, atol=1e-6, rtol=1e-5)
    logits = model(torch.as_tensor(ex.ids).long())
    want = masked_loss_per_example(logits, torch.as_tensor(ex.ids),
                                   torch.as_tensor(ex.loss_mask)).detach().numpy()
    np.testing.assert_allclose(p.model_loss["probe_train"], want, rtol=1e-5)
    assert next(passes, None) is None  # a tiny model: one pass covers every layer


def test_positions_read_the_right_tokens(graphs_dir):
    task = get_task("addition", 5)
    ex = small_split(task, 30, 8)
    carry = ex.features["carry"]
    for i in range(30):
        a = sum(int(b) << k for k, b in enumerate(ex.ids[i, :5]))
        b = sum(int(b) << k for k, b in enumerate(ex.ids[i, 6:11]))
        for r in range(5):  # row r is read at the sum bit s_r and labels the carry out of col r
            assert ex.ids[i, carry.positions[i, r]] == ((a + b) >> r) & 1
            assert carry.labels[i, r] == ((a % 2 ** (r + 1)) + (b % 2 ** (r + 1))) >> (r + 1)
    bfs = get_task("graph_breadth_first_search", 5, graphs_dir=graphs_dir)
    ex = small_split(bfs, 30, 9)
    adj = ex.features["adjacency_list"]
    for i in range(30):
        op = list(ex.ids[i]).index(bfs.eq_id)
        neighbours = {v: set() for v in range(5)}
        for u, v in zip(ex.ids[i, 1:op:2], ex.ids[i, 2:op:2]):
            neighbours[int(u)].add(int(v))
            neighbours[int(v)].add(int(u))
        for r in range(5):  # row r is read at the answer token o_r and holds its neighbours
            node = int(ex.ids[i, adj.positions[i, r]])
            assert adj.positions[i, r] == op + 1 + r
            assert set(np.flatnonzero(adj.labels[i, r])) == neighbours[node]


def test_layer_group_streaming_equals_a_single_pass():
    task = get_task("addition", 4)
    tr, te = small_split(task, 40, 10), small_split(task, 12, 11)
    splits = {"probe_train": tr, "probe_test": te}
    model = tiny_model(task, d=8, layers=4)
    names = ["retrieve_first_op", "carry"]
    one = next(iter_activations(model, splits, names, batch_size=16))  # kept: not exhausted
    width = 5  # positions 9..13 read by the two features
    layer = (40 + 12) * width * 8 * 4
    for max_bytes, n_passes in [(2 * layer, 2), (layer, 4), (layer - 1, 8)]:
        seen, count, losses = set(), 0, []
        for p in iter_activations(model, splits, names, max_bytes, batch_size=16):
            count += 1
            if p.model_loss:
                losses.append(p.model_loss)
            for f in p.features:
                for l in p.layers:
                    seen.add((f, l))
                    for split in splits:
                        for r in range(4):
                            a, b = p.vectors(split, f, l, r), one.vectors(split, f, l, r)
                            np.testing.assert_array_equal(a[0], b[0])
                            np.testing.assert_array_equal(a[1], b[1])
        assert count == n_passes and seen == {(f, l) for f in names for l in range(4)}
        assert len(losses) == 1
        for split in splits:
            np.testing.assert_array_equal(losses[0][split], one.model_loss[split])
        assert not p.acts  # released once the iteration moved on
    with pytest.raises(ValueError, match="raise max_bytes"):
        list(iter_activations(model, splits, names, max_bytes=100))


def test_plan_passes():
    assert plan_passes({("a", "b"): 10, ("a",): 6, ("b",): 6}, 5, 25) == [
        (("a", "b"), (0, 1)), (("a", "b"), (2, 3)), (("a", "b"), (4,))]
    assert plan_passes({("a", "b"): 10, ("a",): 6, ("b",): 4}, 3, 9) == [
        (("a",), (0,)), (("a",), (1,)), (("a",), (2,)), (("b",), (0, 1)), (("b",), (2,))]


# -- probing a model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def addition_probe():
    task = get_task("addition", 6)
    stream = Stream(task, 0, Layout(n_val=10, n_test=10, n_probe_train=120, n_probe_test=40))
    tr, te = stream.examples("probe_train"), stream.examples("probe_test")
    tr.features["carry"].labels[:, 1] = 1  # a constant row: skipped, and no shift (H3)
    model = tiny_model(task, d=8, layers=2, seed=3)
    return task, tr, te, model, probe_model(model, task, tr, te)


def test_probe_model_keys_skips_and_losses(addition_probe):
    task, tr, te, model, res = addition_probe
    m = res.metrics
    assert list(m.columns) == probes.METRIC_COLUMNS and len(m) == 2 * 2 * 6
    assert m.groupby(["feature", "layer", "row"]).size().eq(1).all()
    skipped = m[m.branch == "skipped"]
    assert sorted(map(tuple, skipped[["feature", "layer", "row"]].values)) == [
        ("carry", 0, 1), ("carry", 1, 1)]
    assert skipped.train_loss.isna().all() and (skipped.skipped_reason == "single class in "
                                                "train").all()
    # row 2 of carry keeps its own key: same numbers as a probe fitted on its position directly
    acts = capture(model, tr.ids, "blocks.1.hook_resid_post")["blocks.1.hook_resid_post"]
    acts_te = capture(model, te.ids, "blocks.1.hook_resid_post")["blocks.1.hook_resid_post"]
    c_tr, c_te = tr.features["carry"], te.features["carry"]
    direct = fit_probe(acts[np.arange(120), c_tr.positions[:, 2]].numpy(), c_tr.labels[:, 2],
                       acts_te[np.arange(40), c_te.positions[:, 2]].numpy(), c_te.labels[:, 2],
                       "binary")
    row = m[(m.feature == "carry") & (m.layer == 1) & (m.row == 2)].iloc[0]
    assert row.abs_position == 2 * 6 + 2 + 2 and row.n_train == 120 and row.n_test == 40
    assert row.test_loss == pytest.approx(direct["test_loss"], rel=1e-4)
    # probes, per-example losses and metrics agree
    assert len(res.probes) == (m.branch != "skipped").sum()
    for p in res.probes:
        r = m[(m.feature == p.feature) & (m.layer == p.layer) & (m.row == p.row)].iloc[0]
        assert p.train_loss == r.train_loss and p.W.dtype == np.float32 and p.W.shape == (1, 8)
        assert res.test_losses[p.feature, p.layer, p.row].mean() == pytest.approx(r.test_loss,
                                                                                  rel=1e-5)
    logits = model(torch.as_tensor(te.ids).long())
    np.testing.assert_allclose(res.model_loss["probe_test"], masked_loss_per_example(
        logits, torch.as_tensor(te.ids), torch.as_tensor(te.loss_mask)).detach().numpy(),
        rtol=1e-5)
    best = probes.per_example_losses(res)
    assert set(best.columns) == {"feature", "row", "layer", "example", "loss"}
    assert len(best) == 40 * (2 * 6 - 1)  # every (feature, row) but the skipped one


def test_bfs_queue_last_row_is_multinomial(graphs_dir):
    task = get_task("graph_breadth_first_search", 5, graphs_dir=graphs_dir)
    tr, te = small_split(task, 60, 12), small_split(task, 20, 13)
    res = probe_model(tiny_model(task, layers=1), task, tr, te, features=["queue"], max_iter=50)
    m = res.metrics.set_index("row")
    assert m.branch.tolist() == ["multilabel"] * 3 + ["onehot"]  # r = n-2: one node left
    last = [p for p in res.probes if p.row == 3][0]
    assert last.kind == "onehot"
    assert last.columns.tolist() == sorted(set(tr.features["queue"].labels[:, 3].argmax(1)))
    first = [p for p in res.probes if p.row == 0][0]
    varying = np.flatnonzero(tr.features["queue"].labels[:, 0].std(0) > 0)
    assert first.kind == "multilabel" and first.columns.tolist() == varying.tolist()


def test_probe_model_fails_early():
    class NoFeatures(Addition):
        features = ()
    task = NoFeatures(4)
    ex = small_split(get_task("addition", 4), 8, 0)
    with pytest.raises(ValueError, match="no features"):
        probe_model(tiny_model(task), task, ex, ex)
    task = get_task("addition", 4)
    bare = task.generate(ex.keys, ex.keys, features=False)
    with pytest.raises(ValueError, match="features=True"):
        probe_model(tiny_model(task), task, bare, bare)
    with pytest.raises(ValueError, match="no feature 'nope'"):
        probe_model(tiny_model(task), task, ex, ex, features=["nope"])
    with pytest.raises(ValueError, match="fp32"):
        probe_model(tiny_model(task).double(), task, ex, ex)


def test_random_baselines_are_seeded(addition_probe):
    task, tr, te, model, _ = addition_probe
    before = torch.get_rng_state()
    kw = dict(features=["carry"], max_iter=50)
    base = random_baselines(task, model.cfg, [5, 6], tr, te, **kw)
    assert torch.equal(before, torch.get_rng_state())
    again = random_baselines(task, model.cfg, [5], tr, te, **kw)
    pd.testing.assert_frame_equal(base[5].metrics, again[5].metrics)
    assert not base[5].metrics.train_loss.equals(base[6].metrics.train_loss)


# -- files and selection ---------------------------------------------------------------------

def make_probe(feature, layer, row, loss, kind="binary", columns=None, V=1, d=3):
    W = np.random.default_rng(layer * 10 + row).normal(size=(V, d)).astype(np.float32)
    return FittedProbe(feature, kind, layer, row, W, np.arange(V, dtype=np.float32), columns,
                       loss, loss + 0.1)


def test_save_load_round_trip(tmp_path):
    ps = [make_probe("carry", 0, 1, 0.25), make_probe("queue", 2, 3, 0.5, "multilabel",
                                                      np.array([1, 4, 7]), V=3),
          make_probe("queue", 1, 9, 0.125, "onehot", np.array([2, 5]), V=2)]
    path = tmp_path / "sub" / "probes.bin"  # written exactly there, no .npz appended
    save_probes(path, ps)
    back = load_probes(path)
    assert len(back) == 3
    for a, b in zip(ps, back):
        assert (a.feature, a.kind, a.layer, a.row, a.train_loss, a.test_loss) == \
            (b.feature, b.kind, b.layer, b.row, b.train_loss, b.test_loss)
        assert b.W.dtype == np.float32 and np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
        assert (a.columns is None and b.columns is None) or np.array_equal(a.columns, b.columns)
    save_probes(tmp_path / "empty.npz", [])
    assert load_probes(tmp_path / "empty.npz") == []
    bad = make_probe("carry", 0, 0, 0.1)
    bad.W = bad.W.astype(np.float64)
    with pytest.raises(ValueError, match="float32"):
        save_probes(tmp_path / "bad.npz", [bad])


def test_best_layers_sorts_by_train_loss():
    ps = [make_probe("carry", l, r, loss) for l, r, loss in
          [(0, 0, 0.3), (1, 0, 0.1), (2, 0, 0.2), (0, 1, 0.05), (1, 1, 0.5)]]
    ps.append(make_probe("other", 3, 0, 0.0))
    best = best_layers(ps, "carry", k=2)
    assert {r: [p.layer for p in v] for r, v in best.items()} == {0: [1, 2], 1: [0, 1]}
    assert [p.layer for p in best_layers(ps, "carry")[0]] == [1]
    with pytest.raises(ValueError, match="no probes"):
        best_layers(ps, "queue")
    with pytest.raises(ValueError, match="k must"):
        best_layers(ps, "carry", k=0)


# -- quiet or loud ---------------------------------------------------------------------------

BUDGETS = [1e9, 1e10, 1e11, 1e12, 1e13]
N_EX = 300


def synthetic_curves(drops: dict[str, float], seed=0):
    """Features with 6 rows on 2 layers. Per-example test loss = baseline noise minus 0.3 from
    budget drops[feature] on (np.inf: never). Layer 0 has the lower train loss; layer 1's test
    losses are misleadingly tiny, so choosing by test loss would get every verdict wrong."""
    rng = np.random.default_rng(seed)
    metrics, per_example, baseline = [], [], []
    for feature, drop in drops.items():
        for row in range(6):
            for s in (0, 1):
                baseline.append(pd.DataFrame(dict(seed=s, feature=feature, row=row, layer=0,
                                                  example=np.arange(N_EX),
                                                  loss=0.7 + rng.normal(0, 0.05, N_EX))))
            for budget in BUDGETS:
                shift = 0.3 if budget >= drop else 0.0
                for layer, train_loss in ((0, 0.4), (1, 0.6)):
                    metrics.append(dict(task="addition", budget=budget, feature=feature,
                                        row=row, layer=layer, train_loss=train_loss))
                    loss = (0.7 - shift + rng.normal(0, 0.05, N_EX)) if layer == 0 else \
                        np.full(N_EX, 0.01)
                    per_example.append(pd.DataFrame(dict(budget=budget, feature=feature,
                                                         row=row, layer=layer,
                                                         example=np.arange(N_EX), loss=loss)))
    return pd.DataFrame(metrics), pd.concat(per_example), pd.concat(baseline)


def test_quiet_loud_neither():
    m, pe, base = synthetic_curves({"early": 1e10, "late": 1e12, "never": np.inf})
    out = classify_features(m, pe, base, transition_budget=1e12, n_boot=200)
    assert list(out.columns) == ["task", "feature", "group", "verdict", "onset_budget",
                                 "transition_budget", "effect", "ci_low", "ci_high",
                                 "pre_budget", "effect_pre_transition", "pre_ci_low",
                                 "pre_ci_high", "init_spread", "onset_beyond_init_spread",
                                 "n_boot"]
    verdict = {(r.feature, r.group): r.verdict for r in out.itertuples()}
    for group in ("beginning", "middle", "end"):
        assert verdict["early", group] == "quiet"
        assert verdict["late", group] == "loud"
        assert verdict["never", group] == "neither"
    early = out[out.feature == "early"].iloc[0]
    assert early.onset_budget == 1e10 and early.pre_budget == 1e11
    assert early.ci_low > 0.25 and early.effect == pytest.approx(0.3, abs=0.02)
    assert out[out.feature == "late"].onset_budget.eq(1e12).all()
    assert out[out.feature == "never"].onset_budget.isna().all()
    none = classify_features(m, pe, base, transition_budget=None, n_boot=200)
    assert none.verdict.eq("no transition").all()
    assert none[none.feature == "late"].onset_budget.eq(1e12).all()


def test_init_spread_is_reported_next_to_the_verdict():
    m, pe, base = synthetic_curves({"early": 1e10})
    out = classify_features(m, pe, base, transition_budget=1e12, n_boot=200)
    # two seeds drawn alike: a tiny spread, so the robust onset is the onset
    assert (out.init_spread < 0.02).all()
    assert out.onset_beyond_init_spread.eq(out.onset_budget).all()
    # seed 1 another 0.5 nats worse: the seeds' mean is 0.25 above an untrained model, which the
    # example bootstrap calls significant from the first budget; the spread (0.5) is only
    # exceeded once the model has learnt the feature (0.3 below 0.7, i.e. 0.55 below the mean)
    worse = base.assign(loss=base.loss + 0.5 * (base.seed == 1))
    out = classify_features(m, pe, worse, transition_budget=1e12, n_boot=200)
    assert out.onset_budget.eq(BUDGETS[0]).all() and out.verdict.eq("quiet").all()
    assert out.init_spread.to_numpy() == pytest.approx(0.5, abs=0.02)
    assert out.onset_beyond_init_spread.eq(1e10).all()
    effects = group_effects(m, pe, worse, n_boot=200)
    assert (effects.beyond_init_spread == (effects.ci_low > effects.init_spread)).all()
    # one seed: no spread to measure
    one = classify_features(m, pe, base[base.seed == 0], transition_budget=1e12, n_boot=200)
    assert one.init_spread.eq(0).all()


def test_effects_are_exact_means_and_bootstrap_is_reproducible():
    m, pe, base = synthetic_curves({"early": 1e10}, seed=1)
    a = group_effects(m, pe, base, n_boot=300, seed=7)
    b = group_effects(m, pe, base, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = group_effects(m, pe, base, n_boot=300, seed=8)
    assert not np.allclose(a.ci_low, c.ci_low)
    # the effect at (middle, 1e11) by hand: rows 2, 3 at layer 0, seeds averaged
    rows = [2, 3]
    mod = pe[(pe.budget == 1e11) & (pe.layer == 0) & pe.row.isin(rows)]
    mod = mod.groupby("example").loss.mean()
    bas = base[base.row.isin(rows)].groupby(["seed", "example"]).loss.mean()
    bas = bas.groupby(level="example").mean()
    row = a[(a.group == "middle") & (a.budget == 1e11)].iloc[0]
    assert row.effect == pytest.approx((bas - mod).mean())
    assert row.model_loss == pytest.approx(mod.mean())
    diff = (bas - mod).to_numpy()
    assert (row.ci_low, row.ci_high) == bootstrap_ci(diff, 300, 0.05, 7)
    draws = np.random.default_rng(7).integers(0, len(diff), (300, len(diff)))
    assert row.ci_low == pytest.approx(np.quantile(diff[draws].mean(1), 0.025))


def test_classify_checks_inputs():
    m, pe, base = synthetic_curves({"early": 1e10})
    with pytest.raises(ValueError, match="lacks the best layer"):
        classify_features(m, pe[pe.layer == 1], base, 1e12, n_boot=10)
    with pytest.raises(ValueError, match="missing columns"):
        classify_features(m, pe, base.drop(columns="seed"), 1e12, n_boot=10)
    with pytest.raises(ValueError, match="one layer per"):
        classify_features(m, pe, pd.concat([base, base.assign(layer=1)]), 1e12, n_boot=10)
    two = pd.concat([m, m.assign(task="bfs")])
    with pytest.raises(ValueError, match="one task"):
        classify_features(two, pe, base, 1e12, n_boot=10)


def test_position_groups():
    assert {g: r.tolist() for g, r in position_groups(16).items()} == {
        "beginning": [0, 1, 2, 3, 4], "middle": list(range(5, 11)), "end": [11, 12, 13, 14, 15]}
    assert {g: r.tolist() for g, r in position_groups(2).items()} == {"middle": [0, 1]}


# -- provenance of the probe tables --------------------------------------------------------------

def test_probe_tables_carry_the_provenance_of_the_process_that_fitted_them(
        addition_probe, tmp_path, monkeypatch):
    import json
    from qlf.provenance import COLUMNS, provenance
    from script_runner import run_script
    result = addition_probe[-1]
    dirs = {}
    for name, tag in (("C9", dict(budget=1e9, flops=1e9)), ("C10", dict(budget=1e10, flops=1e10)),
                      ("step0", dict(step=0, flops=0.0)), ("old", dict(budget=1e11, flops=1e11))):
        dirs[name] = tmp_path / name
        probes.save_result(result, dirs[name])
        (dirs[name] / "info.json").write_text(json.dumps(tag))
    strings = {c: str for c in COLUMNS}
    saved = pd.read_csv(dirs["C9"] / "metrics.csv", dtype=strings)
    assert list(saved.columns) == probes.METRIC_COLUMNS + list(COLUMNS)
    made = provenance()
    for key in COLUMNS:
        assert set(saved[key]) == {str(made[key])}, key
    # a folder from before provenance: its rows' columns are empty, not the collector's
    old = pd.read_csv(dirs["old"] / "metrics.csv").drop(columns=list(COLUMNS))
    old.to_csv(dirs["old"] / "metrics.csv", index=False)
    metrics, _ = probes.load_probe_dirs([dirs["old"]], key="budget")
    assert metrics[list(COLUMNS)].isna().all().all()
    out = {k: tmp_path / f"{k}.csv" for k in ("across", "across_examples", "within")}
    run_script("collect_probes", monkeypatch, tmp_path,
               input=dict(across=[dirs["C9"], dirs["C10"]], within=[dirs["step0"]]), output=out)
    for name in ("across", "within"):
        table = pd.read_csv(out[name], dtype=strings)
        assert len(table) == len(result.metrics) * (2 if name == "across" else 1)
        for key in COLUMNS:
            assert set(table[key]) == {str(made[key])}, (name, key)
    # the per-example table stays lean (its rows belong to the metrics rows of their folder)
    assert not set(COLUMNS) & set(pd.read_csv(out["across_examples"]).columns)
