"""Linear probes on the residual stream, and the quiet/loud decision (reference probes.md).

    model + probe sets -> activations at the feature positions (streamed over layer groups)
                       -> one probe per (feature, layer, row r) -> ProbeResult
    ProbeResults across budgets + random-init baselines -> classify_features -> quiet | loud

Activations [§2, §4, H9, H10]: a teacher-forced fp32 forward pass in eval mode with no grad,
capturing `blocks.{l}.hook_resid_post` (the output of block l, l = 0..L-1) only at the positions
some feature reads. What is held at once is bounded by `max_bytes`: the layers are cut into groups
that fit, one forward pass per group, and a pass stops after its group's last layer. The norm eps
is the model's own (ModelConfig stores it), so probing uses the eps of training (H10).

Probes [§7]: per (feature, layer, r), X = the residual vectors at positions[:, r] of the examples
that have row r, y = labels[:, r]; raw, unstandardised activations and C = 100 [KEEP H15].
    regression -> OLS (LinearRegression); loss = mse, plus r2
    binary     -> LogisticRegression(C=100, max_iter=1000); loss = log loss, plus accuracy
    onehot     -> multinomial LogisticRegression on the class ids, log loss over an explicit class
                  list (train and test classes, H4); a multilabel feature takes this branch at a
                  row whose train and test label rows are all exactly one-hot (BFS queue, r=n-2)
    multilabel -> one binary LogisticRegression per label column that varies in train; train and
                  test log loss over those same columns (H16); accuracy per bit
The same probes can be fitted by qlf.probe_solver instead (solver="torch": all layers and rows of
a feature as one batched Newton problem in torch, same objective, branches and skips; the
agreement of the two is tested in tests/test_monitor.py); scikit-learn stays the default.
Log losses clip probabilities to [eps, 1-eps] (float64 eps) as sklearn's log_loss does, so one
confidently wrong example costs at most ~36 nats. Every result is keyed by (feature, layer, r); a
skipped probe is a metrics row with NaN losses and a `skipped_reason` (H3). Convergence is
recorded (`converged`, `n_iter`), not hidden (H15).

Quiet or loud (§10, made a rule): see `classify_features`.
"""
from __future__ import annotations

import io
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from threadpoolctl import threadpool_limits

from . import probe_solver as ps
from .compute import RunSpec
from .data import Layout, Stream
from .model import ModelConfig, Transformer, masked_loss_per_example
from .provenance import with_provenance
from .tasks import Examples, Task, get_task
from .train import load_weights

DEFAULT_MAX_BYTES = 1 << 30  # activations held at once (train + test, all layers of a pass)
SPLITS = ("probe_train", "probe_test")
EPS = np.finfo(np.float64).eps
METRIC_COLUMNS = ["task", "size", "feature", "kind", "branch", "layer", "row", "abs_position",
                  "n_train", "n_test", "n_columns", "train_loss", "test_loss", "train_acc",
                  "test_acc", "train_mse", "test_mse", "train_r2", "test_r2", "converged",
                  "n_iter", "skipped_reason"]
GROUPS = ("beginning", "middle", "end")


# -- results -----------------------------------------------------------------------------------

@dataclass
class FittedProbe:
    """One fitted probe. The ablation code reads this; keep the fields as they are.

    kind: the branch that was fitted (binary | multilabel | onehot | regression).
    W (V, d) float32, b (V,) float32: the scores are X @ W.T + b.
        binary, regression: V = 1 (the logit of class 1, or the predicted value).
        multilabel: one row per kept label column (`columns` holds their indices).
        onehot: one row per class in `columns` (class ids = label column indices), multinomial
            logits; a two-class row is stored as the equivalent pair (-w/2, +w/2).
    train_loss: log loss (mse for regression) on the probe-train split: the selection metric.
    """

    feature: str
    kind: str
    layer: int
    row: int
    W: np.ndarray
    b: np.ndarray
    columns: np.ndarray | None
    train_loss: float
    test_loss: float


@dataclass
class ProbeResult:
    """Everything `probe_model` measured on one model.

    metrics: one row per (feature, layer, row) (METRIC_COLUMNS); train_loss / test_loss are log
        losses, or mse for regression; NaN with a skipped_reason where no probe was fitted.
    probes: the fitted probes (skipped ones absent).
    test_losses: (feature, layer, row) -> float32 per-example test loss (log loss, or squared
        error), aligned with test_examples[(feature, row)]. All layers are kept: at the paper's
        sizes that is at most ~17 features x 16 layers x 16 rows x 1000 x 4 B = 17 MB.
    test_examples: (feature, row) -> int64 indices into probe_test of the examples with row r.
    model_loss: split -> float32 (n,) the model's own mean masked cross-entropy per example
        (each example over its own scored targets, so ragged answers are right, H17).
    """

    task: str
    size: int
    metrics: pd.DataFrame
    probes: list[FittedProbe]
    test_losses: dict[tuple[str, int, int], np.ndarray]
    test_examples: dict[tuple[str, int], np.ndarray]
    model_loss: dict[str, np.ndarray] = field(default_factory=dict)


# -- activations at feature positions ---------------------------------------------------------

@dataclass
class ActivationPass:
    """The activations of one pass: `layers` of the features in `features`.

    acts[split][layer]: float32 (n, P, d), the residual vectors at union[split] (n, P), the
        positions any of the pass's features reads in each example (-1 padded, zero vectors).
    slots[split][feature]: int (n, R) the index into P of row r's position, -1 where absent.
    model_loss[split]: per-example model loss, present in the pass that ran to the output.
    """

    features: tuple[str, ...]
    layers: tuple[int, ...]
    acts: dict[str, dict[int, np.ndarray]]
    slots: dict[str, dict[str, np.ndarray]]
    model_loss: dict[str, np.ndarray]

    def vectors(self, split: str, feature: str, layer: int, row: int):
        """(example indices, X (m, d) float32) of the examples that have `row`."""
        slot = self.slots[split][feature][:, row]
        idx = np.flatnonzero(slot >= 0)
        return idx, self.acts[split][layer][idx, slot[idx]]


def position_slots(positions: list[np.ndarray], seq_len: int):
    """Union of the positions several features read, per example.

    positions: (n, R_f) int arrays, -1 for absent rows. Returns union (n, P) with each example's
    distinct positions ascending (-1 padded) and, per feature, the (n, R_f) index into union
    (-1 where absent).
    """
    n = len(positions[0])
    needed = np.zeros((n, seq_len), bool)
    for pos in positions:
        ex, r = np.nonzero(pos >= 0)
        needed[ex, pos[ex, r]] = True
    count = needed.sum(1)
    width = int(count.max(initial=0))
    order = np.argsort(~needed, axis=1, kind="stable")[:, :width]  # needed positions first
    union = np.where(np.arange(width)[None, :] < count[:, None], order, -1)
    slot_of = np.cumsum(needed, axis=1) - 1  # slot of position t in its row (where needed)
    rows = np.arange(n)[:, None]
    slots = [np.where(pos >= 0, slot_of[rows, np.maximum(pos, 0)], -1) for pos in positions]
    return union, slots


def plan_passes(layer_bytes: dict[tuple[str, ...], int], n_layers: int, max_bytes: int):
    """[(features, layers)] covering every layer of every feature within `max_bytes` per pass.

    layer_bytes maps a feature set to the bytes one layer of it takes (train + test). All
    features share a pass if one layer of them fits; otherwise each feature gets its own passes.
    """
    everything = max(layer_bytes, key=len)
    sets = [everything] if layer_bytes[everything] <= max_bytes else \
        [s for s in layer_bytes if len(s) == 1]
    plan = []
    for fs in sets:
        per_pass = max_bytes // layer_bytes[fs] if layer_bytes[fs] else n_layers
        if per_pass < 1:
            raise ValueError(f"one layer of feature {fs[0]!r} takes {layer_bytes[fs]} bytes of "
                             f"activations, more than max_bytes={max_bytes}; raise max_bytes "
                             f"or use fewer probe examples")
        plan += [(fs, tuple(range(lo, min(n_layers, lo + per_pass))))
                 for lo in range(0, n_layers, per_pass)]
    return plan


class _StopForward(Exception):
    """Raised by the last capturing hook of a pass that does not need the output."""


def _check_model(model: Transformer, splits: dict[str, Examples]) -> None:
    if not isinstance(model, Transformer):
        raise ValueError(f"model must be a qlf.model.Transformer, got {type(model).__name__}")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f"probing runs in fp32; the model's parameters are {dtypes}")
    for split, ex in splits.items():
        if ex.ids.shape[1] > model.cfg.seq_len:
            raise ValueError(f"{split}: sequences of length {ex.ids.shape[1]} exceed the model's "
                             f"seq_len {model.cfg.seq_len}")
        if len(ex) and int(ex.ids.max()) >= model.cfg.vocab_size:
            raise ValueError(f"{split}: token id {int(ex.ids.max())} outside the model's "
                             f"vocabulary of {model.cfg.vocab_size}")


@torch.no_grad()
def _capture(model, ex: Examples, union, layers, batch_size, want_loss):
    """Residual vectors of `layers` at `union` positions, batch by batch (+ per-example loss)."""
    n, width = union.shape
    device = model.rope.device
    acts = {l: np.zeros((n, width, model.cfg.d_model), np.float32) for l in layers}
    loss = np.empty(n, np.float32) if want_loss else None
    last = max(layers)
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        ids = torch.as_tensor(ex.ids[lo:hi], device=device).long()
        pos = torch.as_tensor(union[lo:hi], device=device).long()
        rows = torch.arange(hi - lo, device=device)[:, None]
        absent = (pos < 0).cpu().numpy()

        def keep(layer):
            def fn(x, start):
                block = x[rows, pos.clamp(min=0)].float().cpu().numpy()
                block[absent] = 0.0
                acts[layer][lo:hi] = block
                if layer == last and not want_loss:
                    raise _StopForward
            return fn

        hooks = {f"blocks.{l}.hook_resid_post": keep(l) for l in layers}
        try:
            logits = model(ids, hooks)
        except _StopForward:
            continue
        mask = torch.as_tensor(ex.loss_mask[lo:hi], device=device)
        loss[lo:hi] = masked_loss_per_example(logits, ids, mask).cpu().numpy()
    return acts, loss


def iter_activations(model: Transformer, splits: dict[str, Examples], features,
                     max_bytes: int = DEFAULT_MAX_BYTES, batch_size: int = 256,
                     with_loss: bool = True) -> Iterator[ActivationPass]:
    """Yield the activations at the positions of `features` pass by pass (see plan_passes).

    The first pass that reaches the last layer runs to the output and, with `with_loss`, also
    records each split's per-example model loss. A pass's activation arrays are released when
    the next pass is asked for (copy what must outlive it), so at most one pass is held. The
    model is put in eval mode for the passes and its previous mode restored afterwards.
    """
    _check_model(model, splits)
    if batch_size < 1 or max_bytes < 1:
        raise ValueError(f"batch_size and max_bytes must be >= 1, got {batch_size}, {max_bytes}")
    features = tuple(features)
    if not features:
        raise ValueError("iter_activations: no features given")
    for split, ex in splits.items():
        lacking = [f for f in features if f not in ex.features]
        if lacking:
            raise ValueError(f"{split} has no labels for {lacking}; it has {list(ex.features)}")
    cfg = model.cfg
    sets = [features] + ([(f,) for f in features] if len(features) > 1 else [])
    layout = {fs: {s: position_slots([ex.features[f].positions for f in fs], ex.ids.shape[1])
                   for s, ex in splits.items()} for fs in sets}
    layer_bytes = {fs: sum(u.shape[0] * u.shape[1] * cfg.d_model * 4 for u, _ in lay.values())
                   for fs, lay in layout.items()}
    plan = plan_passes(layer_bytes, cfg.n_layers, max_bytes)
    was_training = model.training
    model.eval()
    try:
        need_loss = with_loss
        for fs, layers in plan:
            want_loss = need_loss and layers[-1] == cfg.n_layers - 1
            need_loss = need_loss and not want_loss
            acts, slots, losses = {}, {}, {}
            for split, ex in splits.items():
                union, feature_slots = layout[fs][split]
                acts[split], loss = _capture(model, ex, union, layers, batch_size, want_loss)
                slots[split] = dict(zip(fs, feature_slots))
                if want_loss:
                    losses[split] = loss
            current = ActivationPass(fs, layers, acts, slots, losses)
            del acts
            yield current
            current.acts.clear()  # the caller may still hold `current`: free its arrays anyway
    finally:
        model.train(was_training)


# -- one probe ---------------------------------------------------------------------------------

class _Skip(Exception):
    """A probe that cannot be fitted; the message is the recorded skipped_reason."""


def _log_losses(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Per-example -log p(true class), p clipped to [eps, 1-eps] (sklearn's log_loss)."""
    p = proba[np.arange(len(y_index)), y_index]
    return -np.log(np.clip(p, EPS, 1 - EPS))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else float("nan")


def _logistic(X_tr, c_tr, X_te, c_te, classes, C, max_iter):
    """Multinomial (or binary) logistic regression on class ids c within the list `classes`.

    Returns a dict of per-example arrays train_loss, train_ok, test_loss, test_ok (log loss over
    `classes`, where a class unseen in train has probability 0, then eps; correct or not), the
    fitted model `lr` and its iteration count `n_iter`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(C=C, max_iter=max_iter).fit(X_tr, c_tr)
    classes = np.asarray(classes)
    fitted_cols = np.searchsorted(classes, lr.classes_)
    out = dict(lr=lr, n_iter=int(np.max(lr.n_iter_)))
    for split, X, c in (("train", X_tr, c_tr), ("test", X_te, c_te)):
        proba = np.zeros((len(X), len(classes)))
        proba[:, fitted_cols] = lr.predict_proba(X)
        y_index = np.searchsorted(classes, c)  # classes ascending, c in classes
        out[f"{split}_loss"] = _log_losses(proba, y_index)
        out[f"{split}_ok"] = lr.predict(X) == c
    return out


def _binary_labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{what}: labels must be 0 or 1, got values {np.unique(y)[:10]}")
    return y.astype(np.int64)


def fit_probe(X_tr, y_tr, X_te, y_te, kind: str, C: float = 100.0, max_iter: int = 1000,
              min_train: int = 10, blas_threads: int | None = 1) -> dict:
    """Fit one probe (module docstring) and evaluate it.

    X_*: (m, d) activations; y_*: (m,) labels for binary/regression, (m, K) for multilabel/onehot.
    Returns a dict: branch, W, b, columns, the metrics (train_loss, test_loss, train_acc, test_acc,
    train_mse, test_mse, train_r2, test_r2, converged, n_iter, n_columns) and test_losses, the
    per-example test loss. Raises _Skip(reason) when there is nothing to fit.
    blas_threads: BLAS/OpenMP threads while fitting (None: leave them as they are). One is the
    default: a probe's matrix-vector products are too small for threads to pay, and on a busy
    machine idle-spinning BLAS threads made small fits 10-50x slower.
    """
    if blas_threads is None:
        return _fit_probe(X_tr, y_tr, X_te, y_te, kind, C, max_iter, min_train)
    with threadpool_limits(blas_threads):
        return _fit_probe(X_tr, y_tr, X_te, y_te, kind, C, max_iter, min_train)


def _probe_inputs(X_tr, y_tr, X_te, y_te, kind, min_train):
    """Checks shared by both solvers; (X_tr, X_te) as float64 arrays, or _Skip."""
    if kind not in ("binary", "multilabel", "onehot", "regression"):
        raise ValueError(f"unknown feature kind {kind!r}")
    if len(X_tr) < min_train:
        raise _Skip(f"{len(X_tr)} train examples (< min_train {min_train})")
    if len(X_te) == 0:
        raise _Skip("no test examples")
    X_tr, X_te = np.asarray(X_tr, np.float64), np.asarray(X_te, np.float64)
    label_ndim = 1 if kind in ("binary", "regression") else 2
    for X, y, split in ((X_tr, y_tr, "train"), (X_te, y_te, "test")):
        if X.ndim != 2 or np.ndim(y) != label_ndim or len(y) != len(X):
            raise ValueError(f"{kind} probe, {split}: X must be (m, d) and y "
                             f"{'(m,)' if label_ndim == 1 else '(m, K)'} with the same m; got "
                             f"{X.shape} and {np.shape(y)}")
    return X_tr, X_te


def _probe_labels(y_tr, y_te, kind) -> dict:
    """The branch a probe takes and its labels (module docstring), or _Skip: the decisions that
    depend on labels only, shared by the sklearn and the batched torch solver.

    regression: y_tr, y_te float; binary: y_tr, y_te 0/1; onehot: c_tr, c_te class ids,
    classes (train and test, ascending), fitted (the train classes); multilabel: Y_tr, Y_te
    restricted to `kept`, the columns that vary in train.
    """
    if kind == "regression":
        y_tr, y_te = np.asarray(y_tr, np.float64), np.asarray(y_te, np.float64)
        if len(np.unique(y_tr)) < 2:
            raise _Skip("constant label in train")
        return dict(branch="regression", y_tr=y_tr, y_te=y_te)
    if kind == "binary":
        y_tr, y_te = _binary_labels(y_tr, "binary train"), _binary_labels(y_te, "binary test")
        if len(np.unique(y_tr)) < 2:
            raise _Skip("single class in train")
        return dict(branch="binary", y_tr=y_tr, y_te=y_te)
    y_tr, y_te = _binary_labels(y_tr, f"{kind} train"), _binary_labels(y_te, f"{kind} test")
    one_hot = (y_tr.sum(1) == 1).all() and (y_te.sum(1) == 1).all()
    if kind == "onehot" and not one_hot:
        raise ValueError("onehot feature: every label row must have exactly one 1")
    if one_hot:
        c_tr, c_te = y_tr.argmax(1), y_te.argmax(1)
        fitted = np.unique(c_tr)
        if len(fitted) < 2:
            raise _Skip("single class in train")
        return dict(branch="onehot", c_tr=c_tr, c_te=c_te, classes=np.union1d(c_tr, c_te),
                    fitted=fitted)
    kept = np.flatnonzero((y_tr != y_tr[:1]).any(0))  # columns that vary in train
    if not len(kept):
        raise _Skip("no label column varies in train")
    return dict(branch="multilabel", Y_tr=y_tr[:, kept], Y_te=y_te[:, kept], kept=kept)


def _empty_metrics() -> dict:
    nan = float("nan")
    return dict(train_acc=nan, test_acc=nan, train_mse=nan, test_mse=nan, train_r2=nan,
                test_r2=nan, columns=None, converged=True, n_iter=0, n_columns=1)


def _regression_metrics(res, lab, p_tr, p_te) -> dict:
    y_tr, y_te = lab["y_tr"], lab["y_te"]
    sq_tr, sq_te = (p_tr - y_tr) ** 2, (p_te - y_te) ** 2
    res.update(train_mse=float(sq_tr.mean()), test_mse=float(sq_te.mean()),
               train_r2=_r2(y_tr, p_tr), test_r2=_r2(y_te, p_te))
    res.update(train_loss=res["train_mse"], test_loss=res["test_mse"], test_losses=sq_te)
    return res


def _fit_probe(X_tr, y_tr, X_te, y_te, kind, C, max_iter, min_train) -> dict:
    X_tr, X_te = _probe_inputs(X_tr, y_tr, X_te, y_te, kind, min_train)
    lab = _probe_labels(y_tr, y_te, kind)
    res = _empty_metrics()

    if lab["branch"] == "regression":
        ols = LinearRegression().fit(X_tr, lab["y_tr"])
        res.update(branch="regression", W=ols.coef_[None, :], b=np.array([ols.intercept_]))
        return _regression_metrics(res, lab, ols.predict(X_tr), ols.predict(X_te))

    if lab["branch"] == "binary":
        fit = _logistic(X_tr, lab["y_tr"], X_te, lab["y_te"], [0, 1], C, max_iter)
        res.update(branch="binary", W=fit["lr"].coef_, b=fit["lr"].intercept_)
        return _classifier_metrics(res, fit, max_iter)

    if lab["branch"] == "onehot":
        fit = _logistic(X_tr, lab["c_tr"], X_te, lab["c_te"], lab["classes"], C, max_iter)
        lr = fit["lr"]
        W, b = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:  # sklearn keeps one logit for two classes: make it symmetric
            W, b = np.concatenate([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        res.update(branch="onehot", W=W, b=b, columns=lr.classes_.astype(np.int64),
                   n_columns=len(lr.classes_))
        return _classifier_metrics(res, fit, max_iter)

    Y_tr, Y_te, kept = lab["Y_tr"], lab["Y_te"], lab["kept"]
    fits = [_logistic(X_tr, Y_tr[:, j], X_te, Y_te[:, j], [0, 1], C, max_iter)
            for j in range(len(kept))]
    # per example: the mean over the kept columns (so accuracy is per bit)
    mean = {k: np.mean([f[k] for f in fits], axis=0)
            for k in ("train_loss", "train_ok", "test_loss", "test_ok")}
    res.update(branch="multilabel", W=np.concatenate([f["lr"].coef_ for f in fits]),
               b=np.concatenate([f["lr"].intercept_ for f in fits]), columns=kept,
               n_columns=len(kept))
    return _classifier_metrics(res, dict(mean, n_iter=max(f["n_iter"] for f in fits)), max_iter)


def _classifier_metrics(res, fit, max_iter) -> dict:
    """The means of _logistic's per-example arrays become the metrics."""
    res.update(train_loss=float(fit["train_loss"].mean()), test_loss=float(fit["test_loss"].mean()),
               train_acc=float(fit["train_ok"].mean()), test_acc=float(fit["test_ok"].mean()),
               test_losses=fit["test_loss"], n_iter=fit["n_iter"],
               converged=fit["n_iter"] < max_iter)
    return res


# -- many probes at once, in torch (qlf.probe_solver) ---------------------------------------------

SOLVERS = ("sklearn", "torch")


def _pad(arrays, width=None, dtype=np.float64) -> np.ndarray:
    """Stack arrays of different lengths along a new first axis, zero padded to `width`."""
    width = max(len(a) for a in arrays) if width is None else width
    out = np.zeros((len(arrays), width) + arrays[0].shape[1:], dtype)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out


def _chunks(n_problems: int, per_problem_bytes: int, max_bytes: int):
    size = max(1, max_bytes // max(1, per_problem_bytes))
    return [slice(lo, min(n_problems, lo + size)) for lo in range(0, n_problems, size)]


def _as_probabilities(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float64)."""
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def fit_probes_torch(items, C: float = 100.0, max_iter: int = 100, min_train: int = 10,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                     max_bytes: int = 1 << 28) -> list:
    """fit_probe for a list of probes at once: items are (X_tr, y_tr, X_te, y_te, kind) tuples;
    the result is, per item, fit_probe's dict or the _Skip it raised. Same branches, skips and
    metrics as the sklearn solver (module docstring); the fitting is qlf.probe_solver's Newton
    method, batched over the probes of a branch (and, for multilabel rows, their columns), in
    chunks of about `max_bytes` of float64 activations on `device`. max_iter counts Newton
    steps (typically 5-30 suffice)."""
    out, groups = [None] * len(items), {}
    for i, (X_tr, y_tr, X_te, y_te, kind) in enumerate(items):
        try:
            X_tr, X_te = _probe_inputs(X_tr, y_tr, X_te, y_te, kind, min_train)
            lab = _probe_labels(y_tr, y_te, kind)
        except _Skip as skip:
            out[i] = skip
            continue
        if lab["branch"] == "onehot":
            n_cls = len(lab["fitted"])
            key = ("binary", 1) if n_cls == 2 else ("multinomial", len(lab["classes"]))
        elif lab["branch"] == "multilabel":
            key = ("binary", len(lab["kept"]))
        else:
            key = (lab["branch"] if lab["branch"] == "regression" else "binary", 1)
        groups.setdefault(key, []).append((i, X_tr, X_te, lab))

    def tensor(a, dt=dtype):
        return torch.as_tensor(a, device=device).to(dt)

    for (solver, K), members in groups.items():
        m = max(len(x) for _, x, _, _ in members)
        d = members[0][1].shape[1]
        hessian = 8 * (K * (d + 1)) ** 2 if solver == "multinomial" else 8 * K * (d + 1) ** 2
        for part in _chunks(len(members), 8 * m * (d + 1) * (4 + K) + 3 * hessian, max_bytes):
            chunk = members[part]
            X = tensor(_pad([x for _, x, _, _ in chunk], m))
            weight = tensor(_pad([np.ones(len(x)) for _, x, _, _ in chunk], m))
            if solver == "regression":
                W, b = ps.fit_least_squares(X, tensor(_pad([lab["y_tr"] for *_, lab in chunk],
                                                           m)), weight)
                fits = [dict(W=W[j:j + 1].cpu().numpy(), b=b[j:j + 1].cpu().numpy(), n_iter=0)
                        for j in range(len(chunk))]
            elif solver == "binary":
                Y, active = [], np.zeros((len(chunk), K), bool)
                for j, (*_, lab) in enumerate(chunk):
                    Y.append(_binary_targets(lab))
                    active[j, :Y[-1].shape[1]] = True
                Yp = np.zeros((len(chunk), m, K))
                for j, y in enumerate(Y):
                    Yp[j, :len(y), :y.shape[1]] = y
                W, b, n_iter, _ = ps.fit_binary(X, tensor(Yp), weight,
                                                torch.as_tensor(active, device=device), C,
                                                max_iter, dtype=dtype)
                fits = [dict(W=W[j, :len(Y[j].T)].cpu().numpy(), b=b[j, :len(Y[j].T)].cpu().numpy(),
                             n_iter=int(n_iter[j, :len(Y[j].T)].max()))
                        for j in range(len(chunk))]
            else:
                c = _pad([np.searchsorted(lab["classes"], lab["c_tr"]) for *_, lab in chunk], m)
                present = np.zeros((len(chunk), K), bool)
                for j, (*_, lab) in enumerate(chunk):
                    present[j, np.searchsorted(lab["classes"], lab["fitted"])] = True
                W, b, n_iter, _ = ps.fit_multinomial(X, torch.as_tensor(c, device=device),
                                                     weight, torch.as_tensor(present,
                                                                             device=device),
                                                     C, max_iter, dtype=dtype)
                fits = []
                for j, (*_, lab) in enumerate(chunk):
                    cols = np.searchsorted(lab["classes"], lab["fitted"])
                    fits.append(dict(W=W[j, cols].cpu().numpy(), b=b[j, cols].cpu().numpy(),
                                     n_iter=int(n_iter[j])))
            for (i, X_tr, X_te, lab), fit in zip(chunk, fits):
                out[i] = _linear_probe_metrics(lab, fit, X_tr, X_te, max_iter)
    return out


def _binary_targets(lab) -> np.ndarray:
    """(m, K) 0/1 train targets of the binary columns a probe fits."""
    if lab["branch"] == "binary":
        return lab["y_tr"][:, None].astype(np.float64)
    if lab["branch"] == "onehot":  # two train classes: one logit for the larger (sklearn)
        return (lab["c_tr"] == lab["fitted"][1])[:, None].astype(np.float64)
    return lab["Y_tr"].astype(np.float64)


def _linear_probe_metrics(lab, fit, X_tr, X_te, max_iter) -> dict:
    """fit_probe's dict from a fitted linear probe (W, b as the torch solver returns them)."""
    res = _empty_metrics()
    W, b = fit["W"], fit["b"]
    branch = lab["branch"]
    if branch == "regression":
        res.update(branch=branch, W=W, b=b)
        return _regression_metrics(res, lab, X_tr @ W[0] + b[0], X_te @ W[0] + b[0])
    per = {}
    if branch in ("binary", "multilabel"):
        for split, X, Y in (("train", X_tr, lab.get("Y_tr", lab.get("y_tr"))),
                            ("test", X_te, lab.get("Y_te", lab.get("y_te")))):
            Y = Y.reshape(len(X), -1)
            z = X @ W.T + b
            p1 = 1.0 / (1.0 + np.exp(-z))
            loss = -np.log(np.clip(np.where(Y == 1, p1, 1 - p1), EPS, 1 - EPS))
            per[f"{split}_loss"], per[f"{split}_ok"] = loss.mean(1), ((z > 0) == Y).mean(1)
        columns = lab["kept"] if branch == "multilabel" else None
        res.update(branch=branch, W=W, b=b, columns=columns,
                   n_columns=len(columns) if columns is not None else 1)
    else:  # onehot: probabilities over the train classes, scored over train and test classes
        fitted, classes = lab["fitted"], lab["classes"]
        if len(fitted) == 2:  # the one binary logit, stored as the symmetric pair (sklearn path)
            W, b = np.concatenate([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        for split, X, c in (("train", X_tr, lab["c_tr"]), ("test", X_te, lab["c_te"])):
            z = X @ W.T + b
            proba = np.zeros((len(X), len(classes)))
            proba[:, np.searchsorted(classes, fitted)] = _as_probabilities(z)
            per[f"{split}_loss"] = _log_losses(proba, np.searchsorted(classes, c))
            per[f"{split}_ok"] = fitted[z.argmax(1)] == c
        res.update(branch=branch, W=W, b=b, columns=fitted.astype(np.int64),
                   n_columns=len(fitted))
    return _classifier_metrics(res, dict(per, n_iter=fit["n_iter"]), max_iter)


# -- probing a model ---------------------------------------------------------------------------

def _feature_names(task: Task, features, splits: dict[str, Examples]) -> list[str]:
    if not task.features:
        raise ValueError(f"{task.name} declares no features: there is nothing to probe (H18)")
    names = [f.name for f in task.features] if features is None else list(features)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"features must be distinct names of {task.name}'s features "
                         f"{[f.name for f in task.features]}, got {names}")
    for name in names:
        task.feature(name)  # unknown name: ValueError listing the known ones
        for split, ex in splits.items():
            if name not in ex.features:
                raise ValueError(f"{split} has no labels for {name!r}: generate it with "
                                 f"features=True")
    return names


def probe_model(model: Transformer, task: Task, probe_train: Examples, probe_test: Examples,
                features=None, max_bytes: int = DEFAULT_MAX_BYTES, batch_size: int = 256,
                C: float = 100.0, max_iter: int = 1000, min_train: int = 10,
                blas_threads: int | None = 1, progress: bool = True,
                solver: str = "sklearn") -> ProbeResult:
    """Probe every layer of `model` for the task's features (all, or the names in `features`).

    probe_train / probe_test: the data layer's probe splits, generated with features=True.
    Probes at a (feature, layer, r) with fewer than `min_train` train examples, no test example,
    or a single train class (constant values) are skipped and recorded with NaN metrics.
    C, max_iter, min_train, blas_threads: see fit_probe. progress: a line on stderr per feature
    and layer group (a model's probes take minutes at the default sizes).
    solver: "sklearn" (fit_probe, one probe at a time) or "torch" (fit_probes_torch: all layers
    and rows of a feature as one batched problem on the model's device; max_iter then caps the
    Newton steps at min(max_iter, 100)).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    splits = {"probe_train": probe_train, "probe_test": probe_test}
    names = _feature_names(task, features, splits)
    declared = {f.name: f.kind for f in task.features}
    rows, probes, test_losses, test_examples, model_loss = [], [], {}, {}, {}
    for p in iter_activations(model, splits, names, max_bytes, batch_size):
        model_loss.update(p.model_loss)
        for name in p.features:
            started, n_before = time.perf_counter(), len(rows)
            lab_tr, lab_te = probe_train.features[name], probe_test.features[name]
            todo = []  # (row dict, test example indices)
            for layer in p.layers:
                for r in range(lab_tr.positions.shape[1]):
                    i_tr = np.flatnonzero(lab_tr.positions[:, r] >= 0)
                    i_te = np.flatnonzero(lab_te.positions[:, r] >= 0)
                    pos = lab_tr.positions[i_tr, r]
                    todo.append((dict(task=task.name, size=task.size, feature=name,
                                      kind=declared[name], layer=layer, row=r,
                                      n_train=len(i_tr), n_test=len(i_te), skipped_reason="",
                                      abs_position=int(np.bincount(pos).argmax())
                                      if len(pos) else -1), i_te))

            def arguments(row):  # fit_probe's arguments (copies: made when needed)
                (i_tr, X_tr), (i_te, X_te) = (p.vectors(s, name, row["layer"], row["row"])
                                              for s in SPLITS)
                return (X_tr, lab_tr.labels[i_tr, row["row"]], X_te,
                        lab_te.labels[i_te, row["row"]], declared[name])

            if solver == "torch":
                fits = fit_probes_torch([arguments(row) for row, _ in todo], C,
                                        min(max_iter, 100), min_train,
                                        device=model.rope.device)
            else:
                fits = []
                for row, _ in todo:
                    try:
                        fits.append(fit_probe(*arguments(row), C, max_iter, min_train,
                                              blas_threads))
                    except _Skip as skip:
                        fits.append(skip)
            for (row, i_te), fit in zip(todo, fits):
                layer, r = row["layer"], row["row"]
                if isinstance(fit, _Skip):
                    rows.append(dict(row, branch="skipped", skipped_reason=str(fit)))
                    continue
                rows.append(dict(row, **{k: v for k, v in fit.items()
                                         if k in METRIC_COLUMNS}))
                probes.append(FittedProbe(
                    name, fit["branch"], layer, r, np.asarray(fit["W"], np.float32),
                    np.asarray(fit["b"], np.float32), fit["columns"],
                    fit["train_loss"], fit["test_loss"]))
                test_losses[name, layer, r] = fit["test_losses"].astype(np.float32)
                test_examples[name, r] = i_te
            if progress:
                print(f"[qlf probes] {task.name} {name} layers {p.layers[0]}-{p.layers[-1]}: "
                      f"{len(rows) - n_before} probes in {time.perf_counter() - started:.1f} s",
                      file=sys.stderr, flush=True)
    order = {n: i for i, n in enumerate(names)}
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    metrics = metrics.sort_values(["feature", "layer", "row"], key=lambda s: s.map(order)
                                  if s.name == "feature" else s, ignore_index=True)
    probes.sort(key=lambda fp: (order[fp.feature], fp.layer, fp.row))
    return ProbeResult(task.name, task.size, metrics, probes, test_losses, test_examples,
                       model_loss)


def random_baselines(task: Task, model_config: ModelConfig, seeds, probe_train: Examples,
                     probe_test: Examples, device: str | torch.device = "cpu",
                     **probe_kwargs) -> dict[int, ProbeResult]:
    """The same probing on fresh inits: torch.manual_seed(seed), then Transformer(model_config).

    The global torch RNG is restored afterwards. probe_kwargs go to probe_model.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one; got {seeds}")
    out = {}
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Transformer(model_config)
        out[seed] = probe_model(model.to(device), task, probe_train, probe_test, **probe_kwargs)
    return out


# -- tidy views and files ----------------------------------------------------------------------

def best_layer_table(metrics: pd.DataFrame, keys=("feature", "row")) -> pd.DataFrame:
    """Per `keys` group the metrics row of the layer with the lowest train_loss (ties: lowest
    layer); groups where every layer was skipped are dropped."""
    fitted = metrics[np.isfinite(metrics.train_loss.to_numpy(float))]
    fitted = fitted.sort_values(list(keys) + ["train_loss", "layer"], kind="mergesort")
    return fitted.groupby(list(keys), sort=True).head(1).reset_index(drop=True)


def per_example_losses(result: ProbeResult, best_only: bool = True) -> pd.DataFrame:
    """Long table (feature, row, layer, example, loss) of per-example probe test losses; with
    best_only, only the best layer of each (feature, row) by train loss."""
    if best_only:
        keys = best_layer_table(result.metrics)[["feature", "layer", "row"]].itertuples(False)
        keys = [tuple(k) for k in keys]
    else:
        keys = list(result.test_losses)
    frames = [pd.DataFrame(dict(feature=f, row=r, layer=l, example=result.test_examples[f, r],
                                loss=result.test_losses[f, l, r])) for f, l, r in keys]
    columns = ["feature", "row", "layer", "example", "loss"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def model_losses(result: ProbeResult) -> pd.DataFrame:
    """Long table (split, example, loss) of the model's own per-example task loss."""
    return pd.concat([pd.DataFrame(dict(split=s, example=np.arange(len(v)), loss=v))
                      for s, v in result.model_loss.items()], ignore_index=True)


def save_probes(path, probes: list[FittedProbe]) -> None:
    """Write probes to one .npz file (no pickle): per-probe arrays W_i, b_i, columns_i and the
    scalar fields as columns. `load_probes` gives back equal objects."""
    arrays = dict(
        feature=np.array([p.feature for p in probes], dtype=str),
        kind=np.array([p.kind for p in probes], dtype=str),
        layer=np.array([p.layer for p in probes], dtype=np.int64),
        row=np.array([p.row for p in probes], dtype=np.int64),
        train_loss=np.array([p.train_loss for p in probes], dtype=np.float64),
        test_loss=np.array([p.test_loss for p in probes], dtype=np.float64),
        has_columns=np.array([p.columns is not None for p in probes], dtype=bool))
    for i, p in enumerate(probes):
        W, b = np.asarray(p.W), np.asarray(p.b)
        if W.dtype != np.float32 or b.dtype != np.float32 or W.ndim != 2 or b.shape != W.shape[:1]:
            raise ValueError(f"probe {i} ({p.feature} layer {p.layer} row {p.row}): W must be "
                             f"(V, d) float32 and b (V,) float32, got {W.dtype}{W.shape}, "
                             f"{b.dtype}{b.shape}")
        arrays[f"W_{i}"], arrays[f"b_{i}"] = W, b
        if p.columns is not None:
            arrays[f"columns_{i}"] = np.asarray(p.columns)
    buffer = io.BytesIO()  # np.savez(path) would append .npz to a path without it
    np.savez(buffer, **arrays)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buffer.getvalue())


def load_probes(path) -> list[FittedProbe]:
    with np.load(path, allow_pickle=False) as data:
        return [FittedProbe(str(data["feature"][i]), str(data["kind"][i]), int(data["layer"][i]),
                            int(data["row"][i]), data[f"W_{i}"], data[f"b_{i}"],
                            data[f"columns_{i}"] if data["has_columns"][i] else None,
                            float(data["train_loss"][i]), float(data["test_loss"][i]))
                for i in range(len(data["feature"]))]


def save_result(result: ProbeResult, directory) -> dict[str, Path]:
    """metrics.csv, probes.npz, per_example.csv (best layer per row) and model_loss.csv."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in
             ("metrics.csv", "probes.npz", "per_example.csv", "model_loss.csv")}
    # the provenance of the process that fitted these probes (per_example.csv, the big table,
    # goes without: its rows belong to the metrics rows of the same folder)
    with_provenance(result.metrics).to_csv(paths["metrics.csv"], index=False)
    save_probes(paths["probes.npz"], result.probes)
    per_example_losses(result).to_csv(paths["per_example.csv"], index=False)
    model_losses(result).to_csv(paths["model_loss.csv"], index=False)
    return paths


def best_layers(probes: list[FittedProbe], feature: str,
                k: int = 1) -> dict[int, list[FittedProbe]]:
    """Per row of `feature`, the k probes with the lowest train_loss, ascending (ties: lower
    layer first)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    mine = [p for p in probes if p.feature == feature]
    if not mine:
        raise ValueError(f"no probes for feature {feature!r}; features present: "
                         f"{sorted({p.feature for p in probes})}")
    out: dict[int, list[FittedProbe]] = {}
    for p in sorted(mine, key=lambda p: (p.row, p.train_loss, p.layer)):
        out.setdefault(p.row, []).append(p)
    return {row: ps[:k] for row, ps in out.items()}


# -- quiet or loud -----------------------------------------------------------------------------

def position_groups(n_rows: int) -> dict[str, np.ndarray]:
    """Rows 0..n_rows-1 cut into beginning (the first n//3), middle, end (the last n//3), as the
    paper's figure; empty groups are left out."""
    k = n_rows // 3
    cuts = {"beginning": np.arange(0, k), "middle": np.arange(k, n_rows - k),
            "end": np.arange(n_rows - k, n_rows)}
    return {g: rows for g, rows in cuts.items() if len(rows)}


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; it has {list(df.columns)}")


def _example_scores(losses: pd.DataFrame, rows) -> pd.Series:
    """Per example, the mean loss over the group's rows it has (index: example)."""
    inside = losses[losses.row.isin(rows)]
    return inside.groupby("example").loss.mean()


def bootstrap_ci(diff: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """Percentile CI of mean(diff) over examples resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def group_effects(across_compute_df: pd.DataFrame, per_example: pd.DataFrame,
                  baseline: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05,
                  seed: int = 0) -> pd.DataFrame:
    """Per (feature, group, budget): model and baseline group losses, their difference and its
    bootstrap CI. Inputs as in `classify_features`. Columns: feature, group, budget,
    model_loss, baseline_loss, effect (= baseline - model), ci_low, ci_high, significant
    (ci_low > 0), init_spread (max - min of the seeds' group losses: how far two random inits
    differ, which the example bootstrap does not see), beyond_init_spread (ci_low > init_spread),
    n_examples."""
    _require(across_compute_df, ["budget", "feature", "row", "layer", "train_loss"],
             "across_compute_df")
    _require(per_example, ["budget", "feature", "row", "layer", "example", "loss"], "per_example")
    _require(baseline, ["seed", "feature", "row", "example", "loss"], "baseline")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"n_boot must be >= 1 and alpha in (0, 1), got {n_boot}, {alpha}")
    layers = baseline.groupby(["seed", "feature", "row"]).layer.nunique() \
        if "layer" in baseline else pd.Series(dtype=int)
    if layers.gt(1).any():
        raise ValueError("baseline: give one layer per (seed, feature, row), the best by train "
                         "loss (per_example_losses(result, best_only=True))")
    best = best_layer_table(across_compute_df, ("budget", "feature", "row"))
    keys = ["budget", "feature", "row", "layer"]
    chosen = per_example.merge(best[keys], on=keys)
    have = chosen[keys].drop_duplicates()
    if len(have) != len(best):
        lacking = best[keys].merge(have, how="left", indicator=True)
        lacking = lacking[lacking._merge == "left_only"].iloc[0]
        raise ValueError(f"per_example lacks the best layer {int(lacking.layer)} of feature "
                         f"{lacking.feature} row {lacking.row} at budget {lacking.budget}")
    out = []
    for feature, metrics in across_compute_df.groupby("feature", sort=False):
        base_f = baseline[baseline.feature == feature]
        if base_f.empty:
            raise ValueError(f"baseline has no losses for feature {feature!r}")
        for group, rows in position_groups(int(metrics.row.max()) + 1).items():
            inside = base_f[base_f.row.isin(rows)]
            per_seed = inside.groupby(["seed", "example"]).loss.mean()
            base = per_seed.groupby(level="example").mean()  # average over seeds
            seed_means = per_seed.groupby(level="seed").mean()
            spread = float(seed_means.max() - seed_means.min()) if len(seed_means) else np.nan
            for budget in sorted(metrics.budget.unique()):
                mine = chosen[(chosen.budget == budget) & (chosen.feature == feature)]
                model = _example_scores(mine, rows)
                pair = pd.concat([model.rename("m"), base.rename("b")], axis=1, join="inner")
                row = dict(feature=feature, group=group, budget=float(budget),
                           init_spread=spread, n_examples=len(pair))
                if len(pair) == 0:  # every row of the group skipped at this budget
                    out.append(dict(row, model_loss=np.nan, baseline_loss=np.nan,
                                    effect=np.nan, ci_low=np.nan, ci_high=np.nan,
                                    significant=False, beyond_init_spread=False))
                    continue
                diff = (pair.b - pair.m).to_numpy()
                lo, hi = bootstrap_ci(diff, n_boot, alpha, seed)
                out.append(dict(row, model_loss=float(pair.m.mean()),
                                baseline_loss=float(pair.b.mean()), effect=float(diff.mean()),
                                ci_low=lo, ci_high=hi, significant=lo > 0,
                                beyond_init_spread=lo > spread))
    columns = ["feature", "group", "budget", "model_loss", "baseline_loss", "effect", "ci_low",
               "ci_high", "significant", "init_spread", "beyond_init_spread", "n_examples"]
    return pd.DataFrame(out, columns=columns)


def classify_features(across_compute_df: pd.DataFrame, per_example: pd.DataFrame,
                      baseline: pd.DataFrame, transition_budget: float | None,
                      n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Quiet or loud, per feature and position group (beginning / middle / end rows), one task.

    Inputs (one task; probes of every budget on the same probe set, so examples are paired):
      across_compute_df: the probe metrics of the trained models, ProbeResult.metrics rows
          with a `budget` column (training FLOPs) added; uses task, budget, feature, row, layer,
          train_loss (NaN = skipped).
      per_example: per-example probe test losses of those models: budget, feature, row, layer,
          example, loss (per_example_losses(result) with `budget` added); it must hold each
          (budget, feature, row)'s best layer by train loss (other layers are ignored).
      baseline: per-example test losses of the random-init models at their best layer by train
          loss: seed, feature, row, example, loss (per_example_losses(result) with `seed`).
      transition_budget: the task's transition (qlf.scaling.transitions), None/NaN if none.

    Statistic: at each budget, each row's best layer by train loss; per example the mean test
    loss over the group's rows; the baseline the same per seed, averaged over seeds. The effect
    is baseline - model, averaged over examples; its CI resamples examples (paired,
    `n_boot` draws, the same draws for every budget from `seed`). Significant iff ci_low > 0
    (no correction for testing several budgets). Verdict: quiet iff significant at a budget
    below the transition; loud iff the first significant budget is at or after it; neither if
    never; "no transition" when there is none (the onset is still reported).
    The bootstrap resamples examples, not initialisations: a model that is only a different init
    (a 1-step run) can differ from the seeds' mean "significantly". So the table also gives
    init_spread (the range of the seeds' group losses) and onset_beyond_init_spread, the first
    budget whose ci_low exceeds it, as evidence next to the verdict (which it does not change).

    Columns: task, feature, group, verdict, onset_budget, transition_budget, effect, ci_low,
    ci_high (at the onset), pre_budget (the last budget before the transition),
    effect_pre_transition, pre_ci_low, pre_ci_high, init_spread, onset_beyond_init_spread,
    n_boot.
    """
    _require(across_compute_df, ["task"], "across_compute_df")
    tasks = across_compute_df.task.unique()
    if len(tasks) != 1:
        raise ValueError(f"classify_features works on one task at a time, got {list(tasks)}")
    t = np.nan if transition_budget is None else float(transition_budget)
    effects = group_effects(across_compute_df, per_example, baseline, n_boot, alpha, seed)
    nan = float("nan")
    rows = []
    for (feature, group), g in effects.groupby(["feature", "group"], sort=False):
        g = g.sort_values("budget")
        sig = g[g.significant]
        onset = sig.iloc[0] if len(sig) else None
        beyond = g[g.beyond_init_spread]
        before = g[g.budget < t * (1 - 1e-9)] if np.isfinite(t) else g.iloc[:0]
        pre = before.iloc[-1] if len(before) else None
        if not np.isfinite(t):
            verdict = "no transition"
        elif onset is None:
            verdict = "neither"
        else:
            verdict = "quiet" if onset.budget < t * (1 - 1e-9) else "loud"
        rows.append(dict(
            task=tasks[0], feature=feature, group=group, verdict=verdict,
            onset_budget=nan if onset is None else onset.budget, transition_budget=t,
            effect=nan if onset is None else onset.effect,
            ci_low=nan if onset is None else onset.ci_low,
            ci_high=nan if onset is None else onset.ci_high,
            pre_budget=nan if pre is None else pre.budget,
            effect_pre_transition=nan if pre is None else pre.effect,
            pre_ci_low=nan if pre is None else pre.ci_low,
            pre_ci_high=nan if pre is None else pre.ci_high, init_spread=g.init_spread.iloc[0],
            onset_beyond_init_spread=beyond.budget.iloc[0] if len(beyond) else nan,
            n_boot=n_boot))
    return pd.DataFrame(rows)


SEED_VERDICT_RULE = ("quiet iff quiet in every training seed (each seed's probe advantage over "
                     "its random inits significant at a budget below the transition); loud iff "
                     "loud in every seed; neither iff neither in every seed; otherwise mixed")


def verdicts_across_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One verdict per (task, feature, group) from classify_features' tables of several training
    seeds (stacked, with a `train_seed` column): SEED_VERDICT_RULE. A seed's quiet verdict already
    means its advantage held before the transition; the combined verdict asks that of every seed,
    so one lucky seed cannot make a feature quiet. One seed gives that seed's verdict.

    Columns: task, feature, group, verdict, n_seeds, n_quiet, seed_verdicts ("s0:quiet s1:loud"),
    onset_budget (the latest seed's onset: by then every seed showed the feature; NaN if a seed
    never did), onset_budget_min, seed_onsets ("s0:1e+10 s1:-"), transition_budget, pre_budget,
    effect_pre_transition (mean over seeds) with _min and _max, init_spread (largest over seeds),
    rule.
    """
    _require(per_seed, ["task", "feature", "group", "verdict", "onset_budget",
                        "transition_budget", "pre_budget", "effect_pre_transition",
                        "init_spread", "train_seed"], "per-seed verdicts")
    if per_seed.empty:
        raise ValueError("verdicts_across_seeds: no per-seed verdicts")
    rows = []
    for (task, feature, group), g in per_seed.groupby(["task", "feature", "group"], sort=False):
        g = g.sort_values("train_seed")
        if g.train_seed.duplicated().any():
            raise ValueError(f"{task} {feature} {group}: a training seed appears twice")
        kinds = set(g.verdict)
        verdict = kinds.pop() if len(kinds) == 1 else "mixed"
        onsets = g.onset_budget.to_numpy(dtype=float)
        effects = g.effect_pre_transition.to_numpy(dtype=float)
        rows.append(dict(
            task=task, feature=feature, group=group, verdict=verdict, n_seeds=len(g),
            n_quiet=int((g.verdict == "quiet").sum()),
            seed_verdicts=" ".join(f"s{s}:{v}" for s, v in zip(g.train_seed, g.verdict)),
            onset_budget=float(onsets.max()) if np.isfinite(onsets).all() else np.nan,
            onset_budget_min=float(np.nanmin(onsets)) if np.isfinite(onsets).any() else np.nan,
            seed_onsets=" ".join(f"s{s}:{o:.0e}" if np.isfinite(o) else f"s{s}:-"
                                 for s, o in zip(g.train_seed, onsets)),
            transition_budget=g.transition_budget.iloc[0], pre_budget=g.pre_budget.iloc[0],
            effect_pre_transition=float(np.mean(effects)) if len(effects) else np.nan,
            effect_pre_transition_min=float(np.min(effects)),
            effect_pre_transition_max=float(np.max(effects)),
            init_spread=float(g.init_spread.max()), rule=SEED_VERDICT_RULE))
    return pd.DataFrame(rows)


# -- the pipeline's units of work: probe one weights file, or seeded random inits ----------------

def probe_sets(spec: RunSpec, task: Task) -> tuple[Examples, Examples]:
    """The probe train/test splits of a run's data (the third disjoint draw of qlf.data): one
    pair per (task, size, data seed), shared by every model of the task."""
    stream = Stream(task, spec.seed, Layout(spec.n_val, spec.n_test, spec.n_probe_train,
                                            spec.n_probe_test))
    return (stream.examples("probe_train", features=True),
            stream.examples("probe_test", features=True))


def _write_info(out_dir: Path, info: dict) -> None:
    (out_dir / "info.json").write_text(json.dumps(info, indent=1))


def probe_weights(weights, out_dir, graphs_dir=None, **probe_kwargs) -> ProbeResult:
    """Probe the model saved at `weights` (qlf.train weights file; a missing file is an error,
    never random weights) on its task's probe sets; write save_result's files plus info.json
    (spec, step, training FLOPs spent up to that step)."""
    model, meta = load_weights(weights)
    spec = RunSpec.from_dict(meta["spec"])
    task = get_task(spec.task, spec.size, graphs_dir=graphs_dir)
    result = probe_model(model, task, *probe_sets(spec, task), **probe_kwargs)
    out_dir = Path(out_dir)
    save_result(result, out_dir)
    _write_info(out_dir, {"weights": str(weights), "spec": meta["spec"], "step": meta["step"],
                          "budget": spec.budget,
                          "flops": spec.flops * meta["step"] / spec.steps})
    return result


def probe_random_inits(weights, seeds, out_dir, graphs_dir=None, **probe_kwargs) -> None:
    """Random-initialisation baselines of the shape saved at `weights`: one subfolder per seed
    (seed{s}/), each with save_result's files and info.json."""
    model, meta = load_weights(weights)
    spec = RunSpec.from_dict(meta["spec"])
    task = get_task(spec.task, spec.size, graphs_dir=graphs_dir)
    train, test = probe_sets(spec, task)
    for seed, result in random_baselines(task, model.cfg, seeds, train, test,
                                         **probe_kwargs).items():
        sub = Path(out_dir) / f"seed{seed}"
        save_result(result, sub)
        _write_info(sub, {"weights": None, "shape_of": str(weights), "spec": meta["spec"],
                          "seed": int(seed)})


def load_probe_dirs(dirs, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, per_example) of several probe_weights/probe_random_inits folders, each row
    tagged with info.json's `key` (budget, step or seed) and, for trained models, flops."""
    metrics, per_example = [], []
    for d in map(Path, dirs):
        info = json.loads((d / "info.json").read_text())
        tags = {key: info[key]}
        if "flops" in info:
            tags["flops"] = info["flops"]
        metrics.append(pd.read_csv(d / "metrics.csv").assign(**tags))
        per_example.append(pd.read_csv(d / "per_example.csv").assign(**tags))
    if not metrics:
        raise ValueError("no probe results to collect")
    # folders written before metrics.csv carried provenance: its columns empty (unknown), never
    # the collecting process's
    return (with_provenance(pd.concat(metrics, ignore_index=True), made={}),
            pd.concat(per_example, ignore_index=True))
