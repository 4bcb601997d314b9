"""Probes fitted during training (a training-loop callback), and the early warning they give.

    ProbeMonitor(task, stream, device)          a fixed probe slice: the first n_train / n_test
                                                examples of the run's probe_train / probe_test
    .on_validation_point(step, model, member)   residual stream at every feature position
                                                (blocks.{l}.hook_resid_post, as qlf.probes) ->
                                                one probe per (feature, layer, row), all fitted
                                                as one batched problem (qlf.probe_solver) ->
                                                per feature and layer the mean test loss over rows
    .result(member) -> {feature: {layer: [[step, test_loss], ...]}}   (summary.monitor)

The probes are those of qlf.probes (same branches, skips and C); what the monitor stores per
(feature, layer) is the mean over the fitted rows of each row's probe test loss (log loss; mean
squared error for regression features). Step 0 is the random-init baseline of the very model.

Early warning (beyond the paper). For a run with a monitor curve and a val curve:
  probe drop   a (feature, layer) curve drops at the first step s > 0 whose loss is at most
               (1 - rel_drop) x its step-0 loss and at least min_drop nats below it, the next
               point (if any) too; a feature drops at its earliest layer.
  plateau exit the val loss leaves its plateau at the first step whose loss is below
               (1 - val_drop) x the task's random-guess loss (qlf.scaling.random_guess_loss),
               the next point (if any) too.
  lead         (exit - drop) / steps (fraction of training) and log10(exit / drop) (decades of
               compute: within a run compute grows linearly with the step).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import Stream
from .model import Transformer
from .probe_solver import (binary_losses, fit_binary, fit_least_squares, fit_multinomial,
                           multinomial_losses, squared_errors)
from .probes import _probe_labels, _Skip, _StopForward, position_slots
from .scaling import _read_record, _record_row, random_guess_loss
from .tasks import Task


class _Group:
    """The rows of one feature that share a solver: labels padded over all examples of the slice.

    rows: row indices; weight_*: (R, n) 1 where the example has the row; binary: Y_* (R, n, K),
    active (R, K); multinomial: c_* (R, n) class index into `classes`, present (R, K);
    regression: y_* (R, n).
    """

    def __init__(self, solver: str, rows, tensors: dict):
        self.solver, self.rows = solver, rows
        for k, v in tensors.items():
            setattr(self, k, v)


class _NonFinite(Exception):
    """The model's activations hold NaN or inf (a diverging member)."""


class ProbeMonitor:
    """Fabric-callback-style monitor: Fabric(callbacks=[m]); fabric.call("on_validation_point",
    step=..., model=..., member=...).

    task: the run's qlf.tasks Task; stream: its qlf.data.Stream (the probe slice is the first
    n_train / n_test examples of its probe_train / probe_test splits, fewer when the layout holds
    fewer; none is an error). device: where activations are captured and probes fitted.
    C, min_train: as qlf.probes. max_iter, tol: Newton steps and stop (qlf.probe_solver).
    dtype: of the example products (float32 by default: the monitor's cost; Hessians and solves
    are float64 either way). max_bytes: activations held at once (layers are done in groups);
    batch_size: examples per forward pass.
    Deterministic and RNG-free: it never touches the global torch RNG.
    Cost per point: a forward pass over n_train + n_test examples (about (n_train + n_test) /
    (3 x batch) training steps) plus the fits; bench/bench_monitor.py measures it against a run.
    """

    def __init__(self, task: Task, stream: Stream, device, n_train: int = 2000,
                 n_test: int = 500, C: float = 100.0, min_train: int = 10, max_iter: int = 50,
                 tol: float = 1e-6, dtype: torch.dtype = torch.float32,
                 max_bytes: int = 1 << 30, batch_size: int = 1024):
        if not task.features:
            raise ValueError(f"{task.name} declares no features: there is nothing to monitor")
        for name, value in (("n_train", n_train), ("n_test", n_test)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.task, self.device = task, torch.device(device)
        self.C, self.min_train, self.max_iter, self.tol = C, min_train, max_iter, tol
        self.dtype, self.max_bytes, self.batch_size = dtype, max_bytes, batch_size
        counts = {"probe_train": min(n_train, stream.n_available("probe_train")),
                  "probe_test": min(n_test, stream.n_available("probe_test"))}
        for split, count in counts.items():
            if count == 0:
                raise ValueError(f"{task.name} size {task.size}: the stream's layout holds no "
                                 f"{split} examples ({stream.layout}); the monitor needs some")
        ex = {s: stream.examples(s, 0, c, features=True) for s, c in counts.items()}
        self.n_train, self.n_test = counts["probe_train"], counts["probe_test"]
        self.features = [f.name for f in task.features]
        self.ids, self.union, self.slots = {}, {}, {}
        for split, e in ex.items():
            union, slots = position_slots([e.features[f].positions for f in self.features],
                                          e.ids.shape[1])
            # causal: tokens after the last probed position cannot change what is captured
            keep = int(union.max(initial=0)) + 1
            self.ids[split] = torch.as_tensor(e.ids[:, :keep].astype(np.int64),
                                              device=self.device)
            self.union[split] = torch.as_tensor(union, device=self.device)
            self.slots[split] = {f: torch.as_tensor(s, device=self.device)
                                 for f, s in zip(self.features, slots)}
        self.groups = {f: self._plan(f, ex) for f in self.features}
        self.skipped = {f: sorted(reasons) for f, (_, reasons) in self.groups.items() if reasons}
        self.groups = {f: g for f, (g, _) in self.groups.items()}
        self.curves: dict[int, dict[str, dict[str, list]]] = {}
        self.seconds, self.calls = 0.0, 0
        self.nonfinite: list[list[int]] = []  # [member, step] of points skipped

    # -- labels: fixed for the whole run ----------------------------------------------------------

    def _plan(self, feature: str, ex) -> tuple[list[_Group], set[str]]:
        kind = self.task.feature(feature).kind
        tr, te = ex["probe_train"].features[feature], ex["probe_test"].features[feature]
        by_key, reasons = {}, set()
        for r in range(tr.positions.shape[1]):
            has_tr, has_te = tr.positions[:, r] >= 0, te.positions[:, r] >= 0
            try:
                if has_tr.sum() < self.min_train:
                    raise _Skip(f"< min_train {self.min_train} train examples")
                if not has_te.any():
                    raise _Skip("no test examples")
                lab = _probe_labels(tr.labels[has_tr, r], te.labels[has_te, r], kind)
            except _Skip as skip:
                reasons.add(f"row {r}: {skip}")
                continue
            if lab["branch"] == "regression":
                key = ("regression", 1)
            elif lab["branch"] == "onehot" and len(lab["fitted"]) > 2:
                key = ("multinomial", tr.labels.shape[2])
            else:
                key = ("binary", 1 if lab["branch"] != "multilabel" else len(lab["kept"]))
            by_key.setdefault(key, []).append((r, has_tr, has_te, lab))
        return [self._group(key, members) for key, members in by_key.items()], reasons

    def _group(self, key, members) -> _Group:
        solver, K = key
        n = {"tr": self.n_train, "te": self.n_test}
        dev = self.device
        t = {}
        for split, idx in (("tr", 1), ("te", 2)):
            w = np.zeros((len(members), n[split]))
            for j, m in enumerate(members):
                w[j, m[idx]] = 1
            t[f"weight_{split}"] = torch.as_tensor(w, device=dev)
        if solver == "regression":
            for split in ("tr", "te"):
                y = np.zeros((len(members), n[split]))
                for j, (_, has_tr, has_te, lab) in enumerate(members):
                    y[j, has_tr if split == "tr" else has_te] = lab[f"y_{split}"]
                t[f"y_{split}"] = torch.as_tensor(y, device=dev)
        elif solver == "binary":
            active = np.zeros((len(members), K), bool)
            for split in ("tr", "te"):
                Y = np.zeros((len(members), n[split], K))
                for j, (_, has_tr, has_te, lab) in enumerate(members):
                    cols = _binary_columns(lab, split)
                    Y[j, has_tr if split == "tr" else has_te, :cols.shape[1]] = cols
                    active[j, :cols.shape[1]] = True
                t[f"Y_{split}"] = torch.as_tensor(Y, device=dev)
            t["active"] = torch.as_tensor(active, device=dev)
        else:  # multinomial over the label columns; present = the train classes
            present = np.zeros((len(members), K), bool)
            for split in ("tr", "te"):
                c = np.zeros((len(members), n[split]), np.int64)
                for j, (_, has_tr, has_te, lab) in enumerate(members):
                    c[j, has_tr if split == "tr" else has_te] = lab[f"c_{split}"]
                    present[j, lab["fitted"]] = True
                t[f"c_{split}"] = torch.as_tensor(c, device=dev)
            t["present"] = torch.as_tensor(present, device=dev)
        return _Group(solver, [m[0] for m in members], t)

    # -- the callback -----------------------------------------------------------------------------

    def on_validation_point(self, step: int, model, member: int = 0) -> None:
        """Probe `model` (a qlf.model.Transformer on the monitor's device) and store, per feature
        and layer, the probe test loss at `step` for `member` (a point already stored at that
        step is replaced: a resumed run recomputes it to the same value). A model whose
        activations are not finite (a member diverging) gets no point: [member, step] goes to
        `nonfinite` and a line to stderr."""
        if not isinstance(model, Transformer):
            raise ValueError(f"model must be a qlf.model.Transformer, got {type(model).__name__}")
        started = time.perf_counter()
        try:
            losses = self.probe_losses(model)
        except _NonFinite:  # a member diverging right now: no point; its run records it
            self.nonfinite.append([int(member), int(step)])
            print(f"[qlf monitor] member {member} step {step}: non-finite activations, no "
                  f"probe point stored", file=sys.stderr, flush=True)
            return
        curves = self.curves.setdefault(int(member), {})
        for feature, per_layer in losses.items():
            for layer, value in per_layer.items():
                points = [p for p in curves.setdefault(feature, {}).setdefault(str(layer), [])
                          if p[0] != int(step)]
                curves[feature][str(layer)] = sorted(points + [[int(step), value]])
        self.seconds += time.perf_counter() - started
        self.calls += 1

    @torch.no_grad()
    def probe_losses(self, model: Transformer) -> dict[str, dict[int, float]]:
        """{feature: {layer: mean over fitted rows of the row's probe test loss}}."""
        L, d = model.cfg.n_layers, model.cfg.d_model
        per_layer = sum(int(u.numel()) for u in self.union.values()) * d * 4
        size = max(1, min(L, self.max_bytes // max(1, per_layer)))
        was_training = model.training
        model.eval()
        out: dict[str, dict[int, float]] = {f: {} for f in self.features if self.groups[f]}
        try:
            for lo in range(0, L, size):
                layers = list(range(lo, min(L, lo + size)))
                acts = {s: self._capture(model, s, layers) for s in self.ids}
                if not all(bool(torch.isfinite(a).all()) for a in acts.values()):
                    raise _NonFinite
                for feature in out:
                    out[feature].update(self._fit_feature(feature, acts, layers))
        finally:
            model.train(was_training)
        return out

    def _capture(self, model, split: str, layers) -> torch.Tensor:
        """(len(layers), n, U, d) float32 residual vectors at the union positions."""
        ids, union = self.ids[split], self.union[split]
        n, U = union.shape
        acts = torch.zeros(len(layers), n, U, model.cfg.d_model, device=self.device)
        last = layers[-1]
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            pos = union[lo:hi].clamp(min=0)
            rows = torch.arange(hi - lo, device=self.device)[:, None]

            def keep(i, layer):
                def fn(x, start):
                    acts[i, lo:hi] = x[rows, pos].float()
                    if layer == last:
                        raise _StopForward
                return fn

            hooks = {f"blocks.{l}.hook_resid_post": keep(i, l) for i, l in enumerate(layers)}
            # fp32 whatever autocast the training loop runs under (probes read fp32 activations)
            with torch.autocast(self.device.type, enabled=False):
                try:
                    model(ids[lo:hi], hooks)
                except _StopForward:
                    pass
        return acts

    def _fit_feature(self, feature: str, acts, layers) -> dict[int, float]:
        total = torch.zeros(len(layers), dtype=torch.float64, device=self.device)
        count = 0
        for g in self.groups[feature]:
            R = len(g.rows)
            X = {}
            for split, s in (("tr", "probe_train"), ("te", "probe_test")):
                slot = self.slots[s][feature][:, g.rows].clamp(min=0)  # (n, R)
                a = acts[s]  # (l, n, U, d)
                n = a.shape[1]
                x = a[:, torch.arange(n, device=self.device)[:, None], slot]  # (l, n, R, d)
                X[split] = x.permute(0, 2, 1, 3).reshape(len(layers) * R, n, -1)
            rep = lambda t: t.repeat((len(layers),) + (1,) * (t.ndim - 1))  # noqa: E731
            w_tr, w_te = rep(g.weight_tr), rep(g.weight_te)
            if g.solver == "regression":
                W, b = fit_least_squares(X["tr"], rep(g.y_tr), w_tr)
                per_example = squared_errors(X["te"], rep(g.y_te), W, b)
            elif g.solver == "binary":
                active = rep(g.active)
                W, b, _, _ = fit_binary(X["tr"], rep(g.Y_tr), w_tr, active, self.C,
                                        self.max_iter, self.tol, self.dtype)
                loss, _ = binary_losses(X["te"], rep(g.Y_te), W, b)
                a = active[:, None, :].to(loss.dtype)
                per_example = (loss * a).sum(-1) / a.sum(-1)
            else:
                present = rep(g.present)
                W, b, _, _ = fit_multinomial(X["tr"], rep(g.c_tr), w_tr, present, self.C,
                                             self.max_iter, self.tol, self.dtype)
                per_example, _ = multinomial_losses(X["te"], rep(g.c_te), W, b, present)
            row_loss = (per_example * w_te).sum(1) / w_te.sum(1)  # (layers * R,)
            total += row_loss.reshape(len(layers), R).sum(1)
            count += R
        return {l: float(v) for l, v in zip(layers, (total / count).tolist())}

    # -- results and resume -----------------------------------------------------------------------

    def result(self, member: int = 0) -> dict:
        """{feature: {layer (str): [[step, test_loss], ...]}} of one member (JSON-ready)."""
        if int(member) not in self.curves:
            raise KeyError(f"the monitor has no points for member {member}; members with "
                           f"points: {sorted(self.curves)}")
        return {f: {l: [list(p) for p in pts] for l, pts in layers.items()}
                for f, layers in self.curves[int(member)].items()}

    def state_dict(self) -> dict:
        return {"curves": {str(m): self.result(m) for m in self.curves},
                "seconds": self.seconds, "calls": self.calls, "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict) -> None:
        self.curves = {int(m): {f: {l: [[int(s), float(v)] for s, v in pts]
                                    for l, pts in layers.items()}
                                for f, layers in c.items()}
                       for m, c in state["curves"].items()}
        self.seconds, self.calls = float(state.get("seconds", 0.0)), int(state.get("calls", 0))
        self.nonfinite = [list(map(int, p)) for p in state.get("nonfinite", [])]


def _binary_columns(lab: dict, split: str) -> np.ndarray:
    """(m, K) 0/1 targets of the binary columns a probe fits (qlf.probes' branches)."""
    if lab["branch"] == "binary":
        return lab[f"y_{split}"][:, None]
    if lab["branch"] == "onehot":  # two train classes: one logit for the larger one (sklearn)
        return (lab[f"c_{split}"] == lab["fitted"][1])[:, None]
    return lab[f"Y_{split}"]


# -- early warning ---------------------------------------------------------------------------------

DROP = dict(rel_drop=0.5, min_drop=0.02)
PLATEAU = dict(val_drop=0.2)
WARNING_COLUMNS = ["task", "size", "budget", "run_id", "steps", "flops", "feature",
                   "drop_layer", "drop_step", "drop_flops", "probe_loss_step0",
                   "probe_loss_at_drop", "plateau_loss", "val_exit_step", "val_exit_flops",
                   "val_loss_at_exit", "lead_fraction", "lead_decades", "verdict"]


def _first_confirmed(steps: np.ndarray, below: np.ndarray):
    """The first step where `below` holds and also holds at the next point (if any)."""
    for i in np.flatnonzero(below):
        if i == len(below) - 1 or below[i + 1]:
            return int(steps[i])
    return None


def _curve(points, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(a) == 0 or not np.isfinite(a).all():
        raise ValueError(f"{what}: expected finite [step, loss] pairs, got {points!r}")
    if (np.diff(a[:, 0]) <= 0).any():
        raise ValueError(f"{what}: steps must increase, got {a[:, 0].tolist()}")
    return a[:, 0].astype(np.int64), a[:, 1]


def probe_drop_step(curve, rel_drop: float = DROP["rel_drop"],
                    min_drop: float = DROP["min_drop"]):
    """The step at which a probe-loss curve ([[step, loss], ...] starting at step 0) first falls
    clearly below its step-0 value (module docstring), or None."""
    steps, loss = _curve(curve, "probe curve")
    if steps[0] != 0:
        raise ValueError(f"probe curve: the first point must be step 0 (the random init), got "
                         f"step {steps[0]}")
    below = (loss <= (1 - rel_drop) * loss[0]) & (loss <= loss[0] - min_drop)
    below[0] = False
    return _first_confirmed(steps, below)


def plateau_exit_step(val_curve, plateau_loss: float, val_drop: float = PLATEAU["val_drop"]):
    """The step at which a val curve first falls below (1 - val_drop) x plateau_loss (the next
    point too), or None."""
    steps, loss = _curve(val_curve, "val curve")
    if not plateau_loss > 0:
        raise ValueError(f"plateau_loss must be > 0, got {plateau_loss}")
    return _first_confirmed(steps, loss < (1 - val_drop) * plateau_loss)


def run_warnings(record: dict, path="record", rel_drop: float = DROP["rel_drop"],
                 min_drop: float = DROP["min_drop"],
                 val_drop: float = PLATEAU["val_drop"]) -> list[dict]:
    """WARNING_COLUMNS rows, one per monitored feature, of one run record."""
    row = _record_row(Path(path), record)
    summary = record["summary"]
    monitor = summary.get("monitor")
    if not monitor:
        raise ValueError(f"{path}: summary has no monitor curves; train the run with the "
                         f"monitor on (training.monitor in the config, or qlf train --monitor)")
    steps, flops = int(summary["steps"]), float(summary["flops_actual"])
    plateau = random_guess_loss(row["task"], int(row["size"]))
    if not summary.get("val_curve"):
        raise ValueError(f"{path}: summary has no val_curve")
    exit_step = plateau_exit_step(summary["val_curve"], plateau, val_drop)
    val = {int(s): float(v) for s, v in summary["val_curve"]}
    out = []
    for feature, layers in monitor.items():
        drops = {}
        for layer, curve in layers.items():
            s = probe_drop_step(curve, rel_drop, min_drop)
            if s is not None:
                drops[int(layer)] = (s, dict((int(a), float(b)) for a, b in curve))
        if drops:
            layer = min(drops, key=lambda l: (drops[l][0], l))
            drop, curve = drops[layer]
            loss0, at_drop = curve[0], curve[drop]
        else:
            layer, drop, loss0, at_drop = None, None, math.nan, math.nan
        if drop is not None and exit_step is not None:
            verdict = ("probe first" if drop < exit_step else
                       "together" if drop == exit_step else "val first")
            lead_fraction = (exit_step - drop) / steps
            lead_decades = math.log10(exit_step / drop)
        else:
            verdict = {(True, False): "probe only", (False, True): "val only",
                       (False, False): "neither"}[(drop is not None, exit_step is not None)]
            lead_fraction = lead_decades = math.nan
        out.append(dict(
            task=row["task"], size=row["size"], budget=row["budget"], run_id=row["run_id"],
            steps=steps, flops=flops, feature=feature,
            drop_layer=math.nan if layer is None else layer,
            drop_step=math.nan if drop is None else drop,
            drop_flops=math.nan if drop is None else flops * drop / steps,
            probe_loss_step0=loss0, probe_loss_at_drop=at_drop, plateau_loss=plateau,
            val_exit_step=math.nan if exit_step is None else exit_step,
            val_exit_flops=math.nan if exit_step is None else flops * exit_step / steps,
            val_loss_at_exit=math.nan if exit_step is None else val[exit_step],
            lead_fraction=lead_fraction, lead_decades=lead_decades, verdict=verdict))
    return out


def early_warning(frontier_df: pd.DataFrame, **rules) -> pd.DataFrame:
    """WARNING_COLUMNS for every run of a compute-optimal frontier (its `path` column names the
    records), one row per run and monitored feature. rules: rel_drop, min_drop, val_drop."""
    missing = [c for c in ("task", "budget", "path") if c not in frontier_df.columns]
    if missing:
        raise ValueError(f"early_warning: the frontier lacks columns {missing}")
    rows = []
    for path in frontier_df.sort_values(["task", "budget"]).path:
        rows += run_warnings(_read_record(Path(path)), path, **rules)
    return pd.DataFrame(rows, columns=WARNING_COLUMNS)
