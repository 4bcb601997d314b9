"""qlf.probe_solver, the torch solver of qlf.probes, qlf.monitor and its early-warning rules.

References are independent: scikit-learn fitted here (LogisticRegression, LinearRegression,
log_loss), curves and records built by hand with the expected steps worked out below.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss

from qlf import probe_solver as ps
from qlf.data import Layout, Stream
from qlf.model import ModelConfig, Transformer, masked_targets, target_loss
from qlf.monitor import (ProbeMonitor, early_warning, plateau_exit_step, probe_drop_step,
                         run_warnings)
from qlf.probes import _Skip, fit_probe, fit_probes_torch, iter_activations, probe_model
from qlf.scaling import random_guess_loss
from qlf.tasks import get_task

# agreement of the torch solver's test log loss with sklearn's (both fitted at C=100)
ABS_TOL, REL_TOL = 0.01, 0.05


def agree(ours, theirs):
    return abs(ours - theirs) <= max(ABS_TOL, REL_TOL * abs(theirs))


def problems(seed, P=5, m=400, d=12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(P, m, d)) * rng.uniform(0.3, 4, (P, 1, d)) + rng.normal(size=(P, 1, d))
    return rng, X


# -- the batched solver against sklearn at a tight tolerance: the same optimum ------------------

def test_binary_solver_finds_sklearns_optimum_with_padding_and_inactive_columns():
    rng, X = problems(0)
    w_true = rng.normal(size=(5, 12, 2))
    Y = (np.einsum("pmd,pdk->pmk", X, w_true) + 2 * rng.normal(size=(5, 400, 2)) > 0) * 1.0
    weight = np.ones((5, 400))
    weight[0, 300:] = 0  # padding: these examples must not count
    X[0, 300:] = 1e3  # ... even when they are huge
    active = np.ones((5, 2), bool)
    active[3, 1] = False
    W, b, n_iter, conv = ps.fit_binary(torch.tensor(X), torch.tensor(Y), torch.tensor(weight),
                                       torch.tensor(active))
    assert conv[active].all() and (n_iter[active] < 30).all() and not conv[3, 1]
    assert (W[3, 1] == 0).all() and b[3, 1] == 0
    for p in range(5):
        keep = weight[p] > 0
        for k in range(2):
            if not active[p, k]:
                continue
            lr = LogisticRegression(C=100, tol=1e-10, max_iter=10000).fit(X[p, keep],
                                                                          Y[p, keep, k])
            np.testing.assert_allclose(W[p, k].numpy(), lr.coef_[0], atol=1e-3, rtol=1e-3)
            assert b[p, k].item() == pytest.approx(lr.intercept_[0], abs=1e-3)


def test_binary_solver_in_float32_products_stays_close():
    rng, X = problems(1)
    Y = (X[..., :1] + X[..., 1:2] + rng.normal(size=(5, 400, 1)) > 0) * 1.0
    args = (torch.tensor(X), torch.tensor(Y), torch.ones(5, 400), torch.ones(5, 1, dtype=bool))
    W64, b64, *_ = ps.fit_binary(*args)
    W32, b32, *_ = ps.fit_binary(*args, dtype=torch.float32)
    l64, _ = ps.binary_losses(args[0], args[1], W64, b64)
    l32, _ = ps.binary_losses(args[0], args[1], W32, b32)
    assert (l64.mean(1) - l32.mean(1)).abs().max() < 1e-4


def test_multinomial_solver_matches_sklearn_with_an_absent_class():
    rng, X = problems(2)
    c = np.argmax(np.einsum("pmd,kd->pmk", X, rng.normal(size=(4, 12)))
                  + 3 * rng.normal(size=(5, 400, 4)), -1)
    present = np.ones((5, 4), bool)
    present[1, 3] = False
    c[1][c[1] == 3] = 0
    weight = np.ones((5, 400))
    weight[2, 350:] = 0
    c[2, 350:] = 3  # padding on a class value: ignored
    W, b, n_iter, conv = ps.fit_multinomial(torch.tensor(X), torch.tensor(c),
                                            torch.tensor(weight), torch.tensor(present))
    assert conv.all() and (n_iter < 30).all()
    for p in range(5):
        keep = weight[p] > 0
        lr = LogisticRegression(C=100, tol=1e-10, max_iter=10000).fit(X[p, keep], c[p, keep])
        z = X[p] @ W[p, present[p]].numpy().T + b[p, present[p]].numpy()
        q = np.exp(z - z.max(1, keepdims=True))
        np.testing.assert_allclose(q / q.sum(1, keepdims=True), lr.predict_proba(X[p]),
                                   atol=1e-4)


def test_least_squares_is_ols_also_when_a_column_is_constant():
    rng, X = problems(3)
    y = X @ rng.normal(size=12)[None, :, None]
    y = y[..., 0] + rng.normal(size=(5, 400))
    X[1, :, 4] = 2.5  # rank deficient after centring: the minimum-norm solution
    weight = np.ones((5, 400))
    weight[4, 200:] = 0
    W, b = ps.fit_least_squares(torch.tensor(X), torch.tensor(y), torch.tensor(weight))
    for p in range(5):
        keep = weight[p] > 0
        ols = LinearRegression().fit(X[p, keep], y[p, keep])
        np.testing.assert_allclose(X[p] @ W[p].numpy() + b[p].item(), ols.predict(X[p]),
                                   atol=1e-8)


# -- fit_probes_torch against fit_probe (sklearn), branch by branch -------------------------------

def test_torch_probes_agree_with_sklearn_probes_on_every_branch():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 10))
    score = X @ rng.normal(size=(10, 5))
    binary = (score[:, 0] + rng.normal(size=600) > 0).astype(int)
    multi = (score[:, :4] + rng.normal(size=(600, 4)) > 0).astype(int)
    multi[:, 2] = 0  # a column that never varies: dropped by both
    onehot3 = np.eye(5, dtype=int)[np.argmax(score[:, :3] + rng.normal(size=(600, 3)), 1)]
    onehot2 = np.eye(5, dtype=int)[np.where(score[:, 1] > 0, 4, 1)]
    regress = score[:, 4] + rng.normal(size=600)
    items = [(X[:450], y[:450], X[450:], y[450:], kind) for y, kind in
             ((binary, "binary"), (multi, "multilabel"), (onehot3, "multilabel"),
              (onehot2, "onehot"), (regress, "regression"), (binary * 0, "binary"),
              (binary, "regression"))]
    items.append((X[:5], binary[:5], X[450:], binary[450:], "binary"))  # < min_train
    ours = fit_probes_torch(items)
    for item, fit in zip(items, ours):
        try:
            ref = fit_probe(*item)
        except _Skip as skip:
            assert isinstance(fit, _Skip) and str(fit) == str(skip)
            continue
        assert fit["branch"] == ref["branch"] and fit["converged"]
        assert agree(fit["test_loss"], ref["test_loss"]), (item[4], fit["test_loss"],
                                                           ref["test_loss"])
        assert abs(fit["test_acc"] - ref["test_acc"]) <= 0.02 or ref["branch"] == "regression"
        assert fit["test_losses"].shape == ref["test_losses"].shape
        assert np.asarray(fit["W"]).shape == np.asarray(ref["W"]).shape
        if ref["columns"] is not None:
            assert fit["columns"].tolist() == ref["columns"].tolist()
    assert [f["branch"] for f in ours[:5]] == ["binary", "multilabel", "onehot", "onehot",
                                               "regression"]
    # the binary probe's loss is sklearn's log_loss of its own W, b
    W, b = ours[0]["W"], ours[0]["b"]
    p1 = 1 / (1 + np.exp(-(X[450:] @ W[0] + b[0])))
    assert ours[0]["test_loss"] == pytest.approx(log_loss(binary[450:], np.c_[1 - p1, p1]),
                                                 rel=1e-9)


# -- a trained tiny addition model ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_addition():
    """Addition on 8 bits, d 32, 2 layers, 400 AdamW steps (seconds on a CPU): a model whose
    residual stream carries the features."""
    task = get_task("addition", 8)
    stream = Stream(task, 0, Layout(n_val=10, n_test=10, n_probe_train=600, n_probe_test=200))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: more threads only contend on a shared machine
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Transformer(ModelConfig(task.vocab_size, task.seq_len, 32, 2, 4))
        init = Transformer(model.cfg)
        init.load_state_dict(model.state_dict())
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        batches = stream.train_batches(64, features=False)
        for _ in range(400):
            ex = next(batches)
            ids = torch.as_tensor(ex.ids).long()
            loss = target_loss(model(ids), masked_targets(ids, torch.as_tensor(ex.loss_mask)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    model.eval()
    return task, stream, init.eval(), model


def objectives(result, C=100.0):
    """(feature, layer, row) -> what both solvers minimise per train example: mean train log
    loss + ||w||^2 / (2 C n_train)."""
    m = result.metrics.set_index(["feature", "layer", "row"])
    return {(p.feature, p.layer, p.row): m.loc[(p.feature, p.layer, p.row)].train_loss
            + float((p.W.astype(float) ** 2).sum()) / (2 * C * m.loc[(p.feature, p.layer,
                                                                         p.row)].n_train)
            for p in result.probes}


def test_torch_solver_agrees_with_sklearn_on_a_trained_model(trained_addition):
    task, stream, _, model = trained_addition
    tr, te = stream.examples("probe_train"), stream.examples("probe_test")
    ref = probe_model(model, task, tr, te, progress=False)  # sklearn as the pipeline runs it
    ours = probe_model(model, task, tr, te, progress=False, solver="torch")
    keys = ["feature", "layer", "row"]
    both = ref.metrics.merge(ours.metrics, on=keys, suffixes=("_sk", "_pt"))
    assert len(both) == len(ref.metrics) == 2 * 2 * 8
    assert (both.branch_sk == both.branch_pt).all()
    fitted = both[both.branch_sk != "skipped"]
    assert len(fitted) > 0 and fitted.converged_pt.all()
    # 1. against sklearn run to convergence (tol 1e-8): the same optimum, the same test loss
    checked = 0
    for p in iter_activations(model, {"probe_train": tr, "probe_test": te},
                              ["retrieve_first_op", "carry"]):
        for r in fitted[fitted.feature.isin(p.features) & fitted.layer.isin(p.layers)] \
                .itertuples():
            (i_tr, X_tr), (i_te, X_te) = (p.vectors(s, r.feature, r.layer, r.row)
                                          for s in ("probe_train", "probe_test"))
            y_tr = tr.features[r.feature].labels[i_tr, r.row]
            y_te = te.features[r.feature].labels[i_te, r.row]
            lr = LogisticRegression(C=100, tol=1e-8, max_iter=20000).fit(X_tr.astype(float),
                                                                          y_tr)
            tight = log_loss(y_te, lr.predict_proba(X_te.astype(float)), labels=[0, 1])
            assert agree(r.test_loss_pt, tight), (r.feature, r.layer, r.row, r.test_loss_pt,
                                                  tight)
            checked += 1
    assert checked == len(fitted)
    # 2. against the pipeline's sklearn (tol 1e-4, max_iter 1000): within the tolerance, or
    # sklearn stopped short of the optimum (its objective is the higher one)
    obj_sk, obj_pt = objectives(ref), objectives(ours)
    for r in fitted.itertuples():
        key = (r.feature, r.layer, r.row)
        assert agree(r.test_loss_pt, r.test_loss_sk) or obj_pt[key] < obj_sk[key] - 1e-6, key
    # the model learned something its probes read: carry is far below chance somewhere
    assert fitted[fitted.feature == "carry"].test_loss_pt.min() < 0.3
    with pytest.raises(ValueError, match="solver"):
        probe_model(model, task, tr, te, progress=False, solver="scipy")


def test_monitor_matches_offline_probes_on_its_slice(trained_addition):
    task, stream, init, model = trained_addition
    mon = ProbeMonitor(task, stream, "cpu", n_train=500, n_test=150)
    rng = torch.get_rng_state()
    mon.on_validation_point(0, init)
    mon.on_validation_point(400, model)
    assert torch.equal(rng, torch.get_rng_state())  # the training run's RNG is untouched
    assert not model.training
    tr = stream.examples("probe_train", 0, 500)
    te = stream.examples("probe_test", 0, 150)
    res = mon.result(0)
    assert set(res) == {"retrieve_first_op", "carry"}
    for step, net in ((0, init), (400, model)):
        ref = probe_model(net, task, tr, te, progress=False).metrics
        expected = ref.groupby(["feature", "layer"]).test_loss.mean()  # skipped rows are NaN
        for (feature, layer), value in expected.items():
            points = dict(map(tuple, res[feature][str(layer)]))
            assert agree(points[step], value), (feature, layer, step, points[step], value)
    assert json.loads(json.dumps(res)) == res  # JSON-ready
    # the init is a baseline: carry's best layer is much better after training
    best = {s: min(dict(map(tuple, c))[s] for c in res["carry"].values()) for s in (0, 400)}
    assert best[400] < 0.5 * best[0]


def test_monitor_state_members_and_replay(trained_addition):
    task, stream, init, model = trained_addition
    mon = ProbeMonitor(task, stream, "cpu", n_train=100, n_test=50)
    mon.on_validation_point(0, init, member=1)
    mon.on_validation_point(5, model, member=1)
    state = json.loads(json.dumps(mon.state_dict()))
    fresh = ProbeMonitor(task, stream, "cpu", n_train=100, n_test=50)
    fresh.load_state_dict(state)
    assert fresh.result(1) == mon.result(1)
    fresh.on_validation_point(5, model, member=1)  # a resumed run recomputes a point: replaced
    assert fresh.result(1) == mon.result(1)
    with pytest.raises(KeyError, match="member 0"):
        mon.result(0)


def test_monitor_takes_what_the_layout_holds_and_fails_on_none():
    task = get_task("addition", 4)
    mon = ProbeMonitor(task, Stream(task, 0, Layout(8, 8, 32, 8)), "cpu")
    assert (mon.n_train, mon.n_test) == (32, 8)
    with pytest.raises(ValueError, match="no probe_test"):
        ProbeMonitor(task, Stream(task, 0, Layout(8, 8, 32, 0)), "cpu")
    with pytest.raises(ValueError, match="n_train"):
        ProbeMonitor(task, Stream(task, 0, Layout(8, 8, 32, 8)), "cpu", n_train=0)


# -- early-warning rules on hand-made curves ------------------------------------------------------

def test_probe_drop_rule():
    # step-0 loss 0.3: "clearly below" is <= 0.15 and <= 0.28; the dip at 4 is not confirmed
    curve = [[0, 0.3], [1, 0.29], [2, 0.2], [4, 0.14], [8, 0.2], [16, 0.1], [32, 0.05]]
    assert probe_drop_step(curve) == 16
    assert probe_drop_step(curve, rel_drop=0.3) == 2  # 0.2 <= 0.21 at 2, 0.14 at 4
    assert probe_drop_step([[0, 0.3], [5, 0.1]]) == 5  # the last point needs no confirmation
    assert probe_drop_step([[0, 0.03], [5, 0.01], [6, 0.01]]) is None  # < min_drop 0.02 nats
    assert probe_drop_step([[0, 0.3], [5, 0.3]]) is None
    with pytest.raises(ValueError, match="step 0"):
        probe_drop_step([[1, 0.3], [5, 0.1]])
    with pytest.raises(ValueError, match="increase"):
        probe_drop_step([[0, 0.3], [5, 0.1], [5, 0.1]])


def test_plateau_exit_rule():
    # plateau 0.65: the val loss leaves it below 0.52, confirmed by the next point
    curve = [[1, 1.6], [2, 0.9], [4, 0.6], [8, 0.5], [16, 0.55], [32, 0.4], [64, 0.1]]
    assert plateau_exit_step(curve, 0.65) == 32
    assert plateau_exit_step(curve, 0.65, val_drop=0.1) == 8  # below 0.585 at 8 and 16
    assert plateau_exit_step(curve[:5], 0.65) is None
    with pytest.raises(ValueError, match="plateau_loss"):
        plateau_exit_step(curve, 0.0)


@pytest.fixture
def synthetic_records(tmp_path):
    """Two frontier runs of addition n16 with hand-made curves (spec from qlf.compute)."""
    from qlf.compute import make_spec
    guess = random_guess_loss("addition", 16)  # 0.657: the plateau exit is below 0.526
    paths = []
    for budget, val, mon in (
            (1e12, [[1, 1.5], [8, 0.66], [64, 0.6], [239, 0.55]],
             {"carry": {"0": [[0, 0.25], [8, 0.2], [64, 0.05], [239, 0.02]],
                        "1": [[0, 0.2], [8, 0.2], [64, 0.15], [239, 0.08]]},
              "retrieve_first_op": {"0": [[0, 0.69], [8, 0.69], [64, 0.68], [239, 0.68]]}}),
            (1e13, [[1, 1.5], [16, 0.66], [128, 0.6], [205, 0.38], [2386, 0.001]],
             {"carry": {"0": [[0, 0.25], [16, 0.2], [128, 0.01], [205, 0.01], [2386, 0.0]],
                        "1": [[0, 0.2], [16, 0.09], [128, 0.01], [205, 0.01], [2386, 0.0]]},
              "retrieve_first_op": {"0": [[0, 0.69], [16, 0.69], [128, 0.6], [205, 0.3],
                                          [2386, 0.1]]}})):
        spec = make_spec("addition", 16, budget, 64, 4, 4, 1e-3, 64, 0, ctx=50.0)
        steps = val[-1][0]
        rec = {"spec": spec.to_dict(),
               "summary": {"val_loss": val[-1][1], "test_acc": 0.0, "steps": steps,
                           "flops_actual": budget * 1.01, "val_curve": val, "monitor": mon}}
        path = tmp_path / f"C{int(math.log10(budget))}.json"
        path.write_text(json.dumps(rec))
        paths.append(path)
    assert guess == pytest.approx(18 / 19 * math.log(2))
    return paths


def test_early_warning_table_on_synthetic_records(synthetic_records):
    frontier = pd.DataFrame({"task": "addition", "budget": [1e13, 1e12],
                             "path": [str(p) for p in synthetic_records[::-1]]})
    df = early_warning(frontier).set_index(["budget", "feature"])
    assert len(df) == 4
    # 1e12: carry drops at step 64 (layer 0: 0.05 <= 0.125, then 0.02); the val loss never goes
    # below 0.8 x 0.657 = 0.526: "probe only"; retrieve_first_op never drops
    r = df.loc[(1e12, "carry")]
    assert (r.drop_step, r.drop_layer, r.verdict) == (64, 0, "probe only")
    assert r.drop_flops == pytest.approx(1.01e12 * 64 / 239)
    assert math.isnan(r.val_exit_step) and math.isnan(r.lead_fraction)
    assert df.loc[(1e12, "retrieve_first_op")].verdict == "neither"
    # 1e13: layer 1 drops first (0.09 <= 0.1 at 16, then 0.01); val exits at 205 (0.38 < 0.526,
    # then 0.001): a lead of (205 - 16) / 2386 of training and log10(205 / 16) decades
    r = df.loc[(1e13, "carry")]
    assert (r.drop_step, r.drop_layer, r.val_exit_step, r.verdict) == (16, 1, 205,
                                                                        "probe first")
    assert r.lead_fraction == pytest.approx((205 - 16) / 2386)
    assert r.lead_decades == pytest.approx(math.log10(205 / 16))
    assert r.val_loss_at_exit == 0.38 and r.probe_loss_step0 == 0.2
    # retrieve_first_op: 0.3 <= 0.345 at 205 (then 0.1): together with the val exit
    r = df.loc[(1e13, "retrieve_first_op")]
    assert (r.drop_step, r.verdict, r.lead_fraction) == (205, "together", 0.0)


def test_early_warning_needs_monitor_curves(synthetic_records, tmp_path):
    rec = json.loads(synthetic_records[0].read_text())
    del rec["summary"]["monitor"]
    with pytest.raises(ValueError, match="no monitor curves"):
        run_warnings(rec, "x.json")


def test_early_warning_plot(synthetic_records, tmp_path):
    from qlf.plots import plot_early_warning
    frontier = pd.DataFrame({"task": "addition", "budget": [1e12, 1e13],
                             "path": [str(p) for p in synthetic_records]})
    out = plot_early_warning(early_warning(frontier), tmp_path / "ew.pdf")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="no rows"):
        plot_early_warning(early_warning(frontier).iloc[:0], tmp_path / "empty.pdf")


@pytest.mark.parametrize("name,size,layout", [
    ("graph_breadth_first_search", 6, (4, 4, 80, 24)),  # multilabel rows and a one-hot last row
    ("majority_of_majority", 8, (10, 10, 300, 100)),    # binary and regression features
])
def test_monitor_matches_offline_probes_on_other_branches(name, size, layout, graphs_dir):
    task = get_task(name, size, graphs_dir=graphs_dir)
    stream = Stream(task, 0, Layout(*layout))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = Transformer(ModelConfig(task.vocab_size, task.seq_len, 8, 2, 2)).eval()
    mon = ProbeMonitor(task, stream, "cpu")
    mon.on_validation_point(0, model)
    ref = probe_model(model, task, stream.examples("probe_train"), stream.examples("probe_test"),
                      progress=False).metrics
    assert set(ref.branch) >= ({"multilabel", "onehot"} if name.startswith("graph")
                               else {"binary", "regression"})
    expected = ref.groupby(["feature", "layer"]).test_loss.mean()
    res = mon.result(0)
    for (feature, layer), value in expected.items():
        assert agree(res[feature][str(layer)][0][1], value), (feature, layer, value)


def test_monitor_skips_a_diverging_member(trained_addition):
    task, stream, init, _ = trained_addition
    broken = Transformer(init.cfg).eval()
    broken.load_state_dict(init.state_dict())
    with torch.no_grad():
        broken.tok_embeddings.weight[:] = float("nan")
    mon = ProbeMonitor(task, stream, "cpu", n_train=50, n_test=20)
    mon.on_validation_point(0, init, member=0)
    mon.on_validation_point(0, broken, member=1)
    assert mon.nonfinite == [[1, 0]] and sorted(mon.curves) == [0]
    assert ProbeMonitor(task, stream, "cpu", n_train=50, n_test=20).load_state_dict(
        json.loads(json.dumps(mon.state_dict()))) is None


def test_newton_solve_survives_a_singular_hessian_and_ignores_finished_problems():
    """Separable data drives p(1-p) to 0: the unpenalised intercept's curvature vanishes and H is
    only semidefinite (a 1e12 addition run crashed here). The solve still returns a descent
    direction; problems already done may hold any H (here NaN) without stopping the others."""
    from qlf.probe_solver import _solve_spd
    singular = torch.diag(torch.tensor([0.01, 0.01, 0.0], dtype=torch.float64))
    H = torch.stack([singular, torch.full((3, 3), float("nan"), dtype=torch.float64)])
    g = torch.tensor([[1.0, -2.0, 0.5], [1.0, 1.0, 1.0]], dtype=torch.float64)
    step = _solve_spd(H, g, torch.tensor([True, False]))
    assert torch.isfinite(step).all()
    assert float(g[0] @ step[0]) > 0  # -step descends
    with pytest.raises(FloatingPointError):
        _solve_spd(H, g, torch.tensor([True, True]))


def test_early_warning_script_writes_this_process_provenance(synthetic_records, tmp_path,
                                                            monkeypatch):
    from qlf.provenance import COLUMNS, provenance
    from script_runner import run_script
    frontier = pd.DataFrame({"task": "addition", "budget": [1e12, 1e13],
                             "path": [str(p) for p in synthetic_records]})
    frontier_csv = tmp_path / "addition_frontier.csv"
    frontier.to_csv(frontier_csv, index=False)
    out = tmp_path / "early_warning.csv"
    run_script("early_warning", monkeypatch, tmp_path, input=dict(frontiers=[frontier_csv]),
               output=[out])
    table = pd.read_csv(out, dtype={c: str for c in COLUMNS})
    expected = early_warning(frontier)
    assert list(table.columns) == list(expected.columns) + list(COLUMNS)
    assert len(table) == len(expected)
    made = provenance()
    for key in COLUMNS:
        assert set(table[key]) == {str(made[key])}, key
