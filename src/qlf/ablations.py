"""Feature ablations: causal tests of probe directions (reference notes ablations.md §6-§8, §12).

For one feature of one task, each probe row r has a fitted linear probe (W (V, d), b (V,)) at its
best layer(s) (qlf.probes.best_layers: lowest probe train loss). The ablation edits the block
output `blocks.{layer}.hook_resid_post` at the token that row r reads (FeatureLabels.positions, per
example; rows absent for an example are left alone):

    x  <-  x - W+ (W x + b),      W+ = Wᵀ(WWᵀ)⁺ the pseudo-inverse, rows of (W, b) unit-normalised

the exact orthogonal projection of x onto the intersection of the rows' hyperplanes {W z + b = 0}
(the reference sums the row-wise projections, which is not a projection when V > 1: §7.2, §12.7).
For V = 1 it is x - (ŵ·x + b̂) ŵ. Afterwards every row's logit is 0:
- binary probes: probability 1/2; multi-label probes: every kept column at 1/2;
- one-hot (multinomial) probes: softmax ignores a common shift of the logits, so the rows and
  biases are first centred (minus their mean over the K classes); the projection then makes all K
  logits equal, a uniform prediction (rank K-1; the two-class pair (-w/2, w/2) is one hyperplane);
- regression probes (OLS, W is (1, d)): the same projection, so the probe's prediction becomes
  **0**, not the label mean. For `retrieve_start_times` (labels 1..9) 0 lies outside the label
  range; for `intermediate_sums` it is a common value.
- If the hyperplanes have no common point (possible only when rank W < V, e.g. a multi-label
  probe with more kept columns than d), the same formula gives the smallest move that minimises
  the sum of squared distances to the hyperplanes (the logits cannot all be zeroed).
The edit is applied in the teacher-forced pass and at every step of greedy decoding (the model's
hooks fire on each newly computed position), so it acts like the reference's full-recompute decode.
Positions are those of the true sequence, also where decoding has already gone wrong.

Random control (fixing §8, whose "probe bias with a random direction" moves x by an unmatched
amount): trial t draws, from a generator seeded by (seed, t), for each (row, layer) target a
random subspace of the dimension of the probe's row space (rank W = V for independent rows), and
for each example a random unit vector u in that subspace (for V = 1 a random sign). At the same
layers and positions it moves x to x + ||Δ|| u, where Δ = -W+(W x + b) is the displacement the
real ablation would apply to this very x. So the control moves every targeted vector by exactly
the real ablation's distance, in a random direction of the same dimension.

Evaluation (§6, fixing §12.8-9): masked teacher-forced cross-entropy per example (each row's own
scored targets, so ragged answers are fine) and greedy exact match of the whole answer span, with
each row's prompt ending before its own '='. Uncertainty: percentile bootstrap over examples with
one seeded set of resamples shared by every statistic, so differences are paired.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from .model import (Hook, Transformer, capture, exact_match, greedy_decode,
                    masked_loss_per_example)
from .tasks.base import Examples, Task

DEFAULT_BATCH = 256
TRIAL_STREAM, BOOT_STREAM = 1, 2  # separate the seeded generators of controls and bootstrap
CI_LEVEL = 0.95


def resid_post(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


# -- the operator ---------------------------------------------------------------------------------

def _unit_rows(W, b, center: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) as float64 with each row divided by ||W_v|| (same hyperplanes, better conditioned);
    with `center`, rows and biases minus their mean over rows first (softmax logits)."""
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    if W.ndim != 2 or b.shape != (len(W),):
        raise ValueError(f"a probe needs W (V, d) and b (V,), got shapes {W.shape} and {b.shape}")
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise ValueError("probe weights must be finite")
    if center:
        if len(W) < 2:
            raise ValueError("a softmax (onehot) probe needs at least 2 rows")
        W, b = W - W.mean(0), b - b.mean()
    norms = np.linalg.norm(W, axis=1)
    if (norms == 0).any():
        raise ValueError(f"probe rows {np.flatnonzero(norms == 0).tolist()} have zero weights: "
                         "they define no hyperplane")
    return W / norms[:, None], b / norms


class _OnDevice:
    """Torch copies of numpy arrays, made once per device."""

    def __init__(self, *arrays: np.ndarray):
        self.arrays, self.copies = arrays, {}

    def on(self, device) -> tuple[torch.Tensor, ...]:
        if device not in self.copies:
            self.copies[device] = tuple(torch.as_tensor(a, device=device) for a in self.arrays)
        return self.copies[device]


class Projector:
    """The affine projection x -> x - W+(W x + b) of one probe (rows unit-normalised, float64;
    `softmax`: the rows are a multinomial probe's logits, centred first)."""

    def __init__(self, W, b, softmax: bool = False):
        self.W, self.b = _unit_rows(W, b, center=softmax)  # (V, d), (V,)
        self.pinv = np.linalg.pinv(self.W)  # (d, V) = Wᵀ(WWᵀ)⁺
        self.rank = int(np.linalg.matrix_rank(self.W))
        self._tensors = _OnDevice(self.W, self.b, self.pinv)

    def displacement(self, x: torch.Tensor) -> torch.Tensor:
        """Δ = -W+(W x + b) for x (..., d) float64, the same shape."""
        W, b, pinv = self._tensors.on(x.device)
        return -(x @ W.T + b) @ pinv.T


def project(x: torch.Tensor, W, b, softmax: bool = False) -> torch.Tensor:
    """x (..., d) projected onto {z : W z + b = 0} (see the module doc), in x's dtype."""
    x64 = x.double()
    return (x64 + Projector(W, b, softmax).displacement(x64)).to(x.dtype)


# -- interventions ---------------------------------------------------------------------------------

class Intervention:
    """Something that edits activations of a fixed set of n examples.

    `hooks(rows, device)` gives the model hooks for a batch made of examples `rows` (indices into
    those n examples), valid for the teacher-forced pass and for greedy decoding alike.
    """

    n_examples: int

    def hooks(self, rows: np.ndarray, device) -> dict[str, Hook]:
        raise NotImplementedError


@dataclass(frozen=True)
class Target:
    """One probe to ablate: feature row `row` at layer `layer`."""

    row: int
    layer: int
    projector: Projector
    kind: str = "binary"  # the fitted probe's branch: binary|multilabel|onehot|regression
    train_loss: float = math.nan
    test_loss: float = math.nan


class _PositionEdits(Intervention):
    """Edits the block output of each target's layer at the target row's position, per example."""

    def __init__(self, targets: Sequence[Target], positions: np.ndarray):
        positions = np.asarray(positions)
        if positions.ndim != 2 or not np.issubdtype(positions.dtype, np.integer):
            raise ValueError(f"positions must be an (n, R) integer array, got {positions.dtype} "
                             f"{positions.shape}")
        if positions.size and positions.min() < -1:
            raise ValueError("positions must be >= 0, or -1 for a row absent from an example")
        if not targets:
            raise ValueError("no targets to ablate (no probe rows were selected)")
        for t in targets:
            if not 0 <= t.row < positions.shape[1]:
                raise ValueError(f"target row {t.row} outside the feature's rows "
                                 f"0..{positions.shape[1] - 1}")
        d = {t.projector.W.shape[1] for t in targets}
        if len(d) != 1:
            raise ValueError(f"probes of one feature disagree on the model width: {sorted(d)}")
        self.targets = list(targets)
        self.positions = positions.astype(np.int64)
        self.n_examples = len(positions)
        self.d_model = d.pop()

    def _edit(self, k: int, x: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
        """New float64 vectors for target k at x (m, d) float64 of examples (m,)."""
        raise NotImplementedError

    def hooks(self, rows, device) -> dict[str, Hook]:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_examples):
            raise ValueError(f"batch rows must index the {self.n_examples} examples of this "
                             f"intervention")
        pos = torch.as_tensor(self.positions[rows], device=device)  # (B, R)
        examples = torch.as_tensor(rows, device=device)
        by_layer: dict[int, list[int]] = {}
        for k, t in enumerate(self.targets):
            by_layer.setdefault(t.layer, []).append(k)

        def make(slots: list[int]) -> Hook:
            def fn(x: torch.Tensor, start: int):
                if x.shape[-1] != self.d_model:
                    raise ValueError(f"probes have width {self.d_model}, the model {x.shape[-1]}")
                out = None
                for k in slots:
                    p = pos[:, self.targets[k].row]
                    hit = (p >= start) & (p < start + x.shape[1])  # absent rows (-1) never hit
                    i = hit.nonzero().squeeze(1)
                    if i.numel() == 0:
                        continue
                    j = p[i] - start
                    out = x.clone() if out is None else out
                    out[i, j] = self._edit(k, out[i, j].double(), examples[i]).to(out.dtype)
                return out
            return fn

        return {resid_post(layer): make(slots) for layer, slots in by_layer.items()}


class FeatureAblation(_PositionEdits):
    """Projection of every target's activation onto its probe's hyperplanes (module doc)."""

    @classmethod
    def from_probes(cls, selected: dict[int, list], positions: np.ndarray) -> "FeatureAblation":
        """From {row: [probe, ...]} (qlf.probes.best_layers) and FeatureLabels.positions (n, R).

        A probe has .kind, .row, .layer, .W (V, d), .b (V,), .train_loss and .test_loss; kind
        "onehot" marks softmax logits (qlf.probes.FittedProbe).
        """
        targets = []
        for row, probes in sorted(selected.items()):
            layers = [p.layer for p in probes]
            if len(set(layers)) != len(layers):
                raise ValueError(f"row {row}: layers {layers} repeat")
            for p in probes:
                if p.row != row:
                    raise ValueError(f"a probe of row {p.row} was listed under row {row}")
                targets.append(Target(int(row), int(p.layer),
                                      Projector(p.W, p.b, softmax=p.kind == "onehot"),
                                      str(p.kind), float(p.train_loss), float(p.test_loss)))
        return cls(targets, positions)

    def _edit(self, k, x, examples):
        return x + self.targets[k].projector.displacement(x)


class RandomControl(_PositionEdits):
    """Same targets as `ablation`, moved by the real ablation's distance in random directions.

    Trial `trial` draws, from np.random.default_rng((seed, TRIAL_STREAM, trial)), for each target
    in order a (d, rank W) orthonormal basis (QR of a Gaussian matrix) and for each of the n
    examples a uniform unit vector of coefficients in that basis.
    """

    def __init__(self, ablation: FeatureAblation, seed: int, trial: int):
        super().__init__(ablation.targets, ablation.positions)
        self.seed, self.trial = int(seed), int(trial)
        rng = np.random.default_rng([self.seed, TRIAL_STREAM, self.trial])
        self.bases, self.coefs = [], []  # per target: (d, rank) orthonormal, (n, rank) unit rows
        for t in self.targets:
            basis, _ = np.linalg.qr(rng.standard_normal((self.d_model, t.projector.rank)))
            coef = rng.standard_normal((self.n_examples, basis.shape[1]))
            self.bases.append(basis)
            self.coefs.append(coef / np.linalg.norm(coef, axis=1, keepdims=True))
        self._tensors = [_OnDevice(b, c) for b, c in zip(self.bases, self.coefs)]

    def direction(self, k: int, examples: torch.Tensor) -> torch.Tensor:
        """(m, d) float64 unit vectors of target k for the given example indices."""
        basis, coef = self._tensors[k].on(examples.device)
        return coef[examples] @ basis.T

    def _edit(self, k, x, examples):
        distance = self.targets[k].projector.displacement(x).norm(dim=-1, keepdim=True)
        return x + distance * self.direction(k, examples)


def _combined(hook_sets: list[dict[str, Hook]]) -> dict[str, Hook]:
    """Hooks that apply several interventions' hooks at one point in order."""
    names: dict[str, list[Hook]] = {}
    for hooks in hook_sets:
        for name, fn in hooks.items():
            names.setdefault(name, []).append(fn)

    def chain(fns: list[Hook]) -> Hook:
        def fn(x, start):
            for f in fns:
                out = f(x, start)
                x = x if out is None else out
            return x
        return fn

    return {name: fns[0] if len(fns) == 1 else chain(fns) for name, fns in names.items()}


# -- evaluation ------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """Per-example results of one condition."""

    loss: np.ndarray  # (n,) float64 mean masked CE over the example's scored targets
    correct: np.ndarray  # (n,) bool greedy exact match of the whole answer span


@torch.no_grad()
def evaluate(model: Transformer, examples: Examples,
             interventions: Intervention | Sequence[Intervention] | None = None,
             batch_size: int = DEFAULT_BATCH) -> Evaluation:
    """Teacher-forced loss and greedy exact match per example, with the interventions active in
    both (several interventions are applied in the given order at a shared hook point)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if interventions is None:
        interventions = []
    elif isinstance(interventions, Intervention):
        interventions = [interventions]
    n = len(examples)
    for iv in interventions:
        if iv.n_examples != n:
            raise ValueError(f"an intervention built for {iv.n_examples} examples was given "
                             f"{n} examples")
    if examples.ids.shape[1] > model.cfg.seq_len:
        raise ValueError(f"examples have length {examples.ids.shape[1]}, the model at most "
                         f"{model.cfg.seq_len}")
    mask = np.asarray(examples.loss_mask)
    if n and not mask.any(1).all():
        raise ValueError("every example needs a scored answer ('=' .. EOS) in its loss_mask")
    eq_pos = mask.argmax(1)
    device = model.rope.device
    loss, correct = np.empty(n), np.empty(n, dtype=bool)
    for lo in range(0, n, batch_size):
        rows = np.arange(lo, min(n, lo + batch_size))
        ids = torch.as_tensor(examples.ids[rows], device=device).long()
        batch_mask = torch.as_tensor(mask[rows], device=device)
        hooks = _combined([iv.hooks(rows, device) for iv in interventions]) or None
        logits = model(ids, hooks)
        loss[rows] = masked_loss_per_example(logits, ids, batch_mask).double().cpu().numpy()
        generated = greedy_decode(model, ids, eq_pos[rows], hooks, given=batch_mask == 0)
        correct[rows] = exact_match(generated, ids, batch_mask).cpu().numpy()
    return Evaluation(loss, correct)


@torch.no_grad()
def displacement_norms(model: Transformer, examples: Examples, ablation: FeatureAblation,
                       batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """(n_targets, 2): per target, the mean ||Δ|| the ablation moves x by and the mean ||x||, over
    the examples that have the target's row, in the plain model's teacher-forced pass (how far
    the probe's hyperplanes lie from the activations, relative to their size)."""
    sums = np.zeros((len(ablation.targets), 3))  # sum ||Δ||, sum ||x||, count
    names = sorted({resid_post(t.layer) for t in ablation.targets})
    for lo in range(0, len(examples), batch_size):
        rows = np.arange(lo, min(len(examples), lo + batch_size))
        acts = capture(model, examples.ids[rows], names, ablation.positions[rows])
        for k, t in enumerate(ablation.targets):
            present = torch.as_tensor(ablation.positions[rows, t.row] >= 0)
            x = acts[resid_post(t.layer)][:, t.row][present.to(model.rope.device)].double()
            sums[k] += [t.projector.displacement(x).norm(dim=-1).sum().item(),
                        x.norm(dim=-1).sum().item(), len(x)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, :2] / sums[:, 2:]


# -- statistics ------------------------------------------------------------------------------------

def bootstrap_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int: how often each of n examples is drawn in each of n_boot resamples of a
    seeded bootstrap; counts @ values / n are the resample means."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"bootstrap needs n >= 1 examples and n_boot >= 1, got {n}, {n_boot}")
    rng = np.random.default_rng([int(seed), BOOT_STREAM])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)


def _num(x) -> float | None:
    """A plain float for JSON, None where undefined (nan/inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _ci(samples: np.ndarray) -> list:
    tail = 100 * (1 - CI_LEVEL) / 2
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return [None, None]
    return [_num(v) for v in np.percentile(samples, [tail, 100 - tail])]


def _condition(correct: np.ndarray, loss: np.ndarray, resample) -> dict:
    acc, acc_ci = _num(correct.mean()), _ci(resample(correct))
    loss, loss_ci = _num(loss.mean()), _ci(resample(loss))
    return {"acc": acc, "acc_ci": acc_ci, "loss": loss, "loss_ci": loss_ci}


def summarise(base: Evaluation, ablated: Evaluation, controls: Sequence[Evaluation],
              n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy and loss of each condition with bootstrap CIs, drops and per-example arrays."""
    if not controls:
        raise ValueError("at least one random-control trial is needed")
    n = len(base.correct)
    for ev in [base, ablated, *controls]:
        if ev.correct.shape != (n,) or ev.loss.shape != (n,):
            raise ValueError(f"every condition needs per-example arrays over the same {n} "
                             f"examples, got {ev.correct.shape} and {ev.loss.shape}")
    counts = bootstrap_counts(n, n_boot, seed)

    def resample(values: np.ndarray) -> np.ndarray:  # (n_boot,) means, paired across values
        return counts @ np.asarray(values, dtype=np.float64) / n

    b_acc, a_acc = base.correct.astype(np.float64), ablated.correct.astype(np.float64)
    c_rate = np.mean([c.correct for c in controls], axis=0)  # per example, over trials
    c_loss = np.mean([c.loss for c in controls], axis=0)
    control = _condition(c_rate, c_loss, resample)
    control["trial_acc"] = [float(c.correct.mean()) for c in controls]
    control["trial_loss"] = [float(c.loss.mean()) for c in controls]
    boot_b, boot_a, boot_c = resample(b_acc), resample(a_acc), resample(c_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_boot = (boot_b - boot_a) / boot_b
    base_acc = b_acc.mean()
    return {
        "baseline": _condition(b_acc, base.loss, resample),
        "ablated": _condition(a_acc, ablated.loss, resample),
        "control": control,
        "drop": {"abs": _num(base_acc - a_acc.mean()), "abs_ci": _ci(boot_b - boot_a),
                 "rel": _num((base_acc - a_acc.mean()) / base_acc) if base_acc > 0 else None,
                 "rel_ci": _ci(rel_boot) if base_acc > 0 else [None, None]},
        "control_drop": {"abs": _num(base_acc - c_rate.mean()), "abs_ci": _ci(boot_b - boot_c)},
        "drop_beyond_control": {"abs": _num(c_rate.mean() - a_acc.mean()),
                                "abs_ci": _ci(boot_c - boot_a)},
        "per_example": {
            "baseline_correct": base.correct.tolist(), "ablated_correct": ablated.correct.tolist(),
            "control_correct_rate": c_rate.tolist(), "baseline_loss": base.loss.tolist(),
            "ablated_loss": ablated.loss.tolist(), "control_loss": c_loss.tolist()},
    }


# -- one feature -----------------------------------------------------------------------------------

def ablate_feature(model: Transformer, task: Task, examples: Examples, probes, feature: str,
                   k: int = 1, n_random: int = 32, seed: int = 0, n_boot: int = 1000,
                   batch_size: int = DEFAULT_BATCH) -> dict:
    """Baseline, feature ablation and `n_random` random controls on `examples` (normally the
    probe_test split, generated with features) for the top-`k` layers (lowest probe train loss)
    of every probed row of `feature`. `probes`: the FittedProbe list of this model (qlf.probes).
    Returns a JSON-serialisable dict (summary_table gives the flat view)."""
    from .probes import best_layers  # the module above this one in the data flow

    _check_count("k", k)
    task.feature(feature)  # fail early on a name the task does not have
    selected = best_layers(probes, feature, k=k)
    result = ablate_selected(model, task, examples, feature, selected, n_random=n_random,
                             seed=seed, n_boot=n_boot, batch_size=batch_size)
    return {**result, "k": k}


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def ablate_selected(model: Transformer, task: Task, examples: Examples, feature: str,
                    selected: dict[int, list], n_random: int = 32, seed: int = 0,
                    n_boot: int = 1000, batch_size: int = DEFAULT_BATCH) -> dict:
    """ablate_feature for an explicit probe choice {row: [probe, ...]} (FittedProbe-like objects:
    .kind, .row, .layer, .W, .b, .train_loss, .test_loss)."""
    _check_count("n_random", n_random)
    _check_count("n_boot", n_boot)
    spec = task.feature(feature)
    if feature not in examples.features:
        raise ValueError(f"the examples have no labels of feature {feature!r} (they have "
                         f"{sorted(examples.features)}): generate them with features=True")
    if examples.ids.shape[1] != task.seq_len or model.cfg.vocab_size != task.vocab_size:
        raise ValueError(f"examples/model do not match task {task.name}-{task.size} (length "
                         f"{examples.ids.shape[1]} vs {task.seq_len}, vocab "
                         f"{model.cfg.vocab_size} vs {task.vocab_size})")
    if not selected:
        raise ValueError(f"no probes of feature {feature!r} to ablate")
    ablation = FeatureAblation.from_probes(selected, examples.features[feature].positions)
    shifts = displacement_norms(model, examples, ablation, batch_size)
    base = evaluate(model, examples, None, batch_size)
    ablated = evaluate(model, examples, ablation, batch_size)
    print(f"[qlf ablations] {task.name} {feature}: accuracy {np.mean(base.correct):.3f} -> "
          f"{np.mean(ablated.correct):.3f} ablated", file=sys.stderr, flush=True)
    started = time.perf_counter()
    controls = []
    for t in range(n_random):
        controls.append(evaluate(model, examples, RandomControl(ablation, seed, t), batch_size))
        if t == 0 or t + 1 == n_random or (t + 1) % 8 == 0:
            print(f"[qlf ablations] {task.name} {feature}: random control {t + 1}/{n_random} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    result = {
        "task": task.name, "size": int(task.size), "feature": feature, "kind": spec.kind,
        "k": max(len(v) for v in selected.values()), "n_examples": len(examples),
        "n_random": n_random, "seed": int(seed), "n_boot": n_boot,
        "targets": [{"row": t.row, "layer": t.layer, "kind": t.kind,
                     "n_directions": len(t.projector.W),
                     "rank": t.projector.rank, "train_loss": _num(t.train_loss),
                     "test_loss": _num(t.test_loss), "mean_shift": _num(shift),
                     "mean_norm": _num(norm)}
                    for t, (shift, norm) in zip(ablation.targets, shifts)],
        "shift_ratio": _num(np.nanmean(shifts[:, 0]) / np.nanmean(shifts[:, 1])),
        "rows": sorted({t.row for t in ablation.targets}),
        "layers": sorted({t.layer for t in ablation.targets}),
    }
    result.update(summarise(base, ablated, controls, n_boot=n_boot, seed=seed))
    return result


# -- the summary table -----------------------------------------------------------------------------

_NESTED = {"baseline": ("acc", "loss"), "ablated": ("acc", "loss"), "control": ("acc", "loss"),
           "drop": ("abs", "rel"), "control_drop": ("abs",), "drop_beyond_control": ("abs",)}


def summary_row(result: dict) -> dict:
    """One flat row of an ablate_feature result: every top-level scalar (task, size, feature, any
    key a caller added such as the budget), the targets as 'row:layer' text, and each statistic
    with its CI as `{group}_{stat}`, `{group}_{stat}_lo`, `{group}_{stat}_hi`."""
    row = {key: value for key, value in result.items()
           if value is None or isinstance(value, (str, int, float, bool))}
    row["targets"] = " ".join(f"{t['row']}:{t['layer']}" for t in result["targets"])
    for group, stats in _NESTED.items():
        if group not in result:
            raise ValueError(f"not an ablate_feature result: no {group!r} entry")
        for stat in stats:
            name = f"{group}_{stat}"
            row[name] = result[group][stat]
            row[name + "_lo"], row[name + "_hi"] = result[group][stat + "_ci"]
    return row


def summary_table(results: Iterable[dict]) -> pd.DataFrame:
    """Tidy table, one row per (task, feature) result, for results/ablations/summary.csv."""
    rows = [summary_row(r) for r in results]
    if not rows:
        raise ValueError("no ablation results to summarise")
    return pd.DataFrame(rows)


def ablate_weights(weights, probes_path, feature: str, graphs_dir=None, **options) -> dict:
    """The pipeline's unit of work: ablate `feature` in the model saved at `weights` (a qlf.train
    weights file; missing -> FileNotFoundError) with the probes fitted on it (qlf.probes
    save_probes file), evaluated on the task's probe-test split. `options` go to ablate_feature;
    the result also names the model's budget and run."""
    from .compute import RunSpec
    from .probes import load_probes, probe_sets
    from .tasks import get_task
    from .train import load_weights

    model, meta = load_weights(weights)
    spec = RunSpec.from_dict(meta["spec"])
    task = get_task(spec.task, spec.size, graphs_dir=graphs_dir)
    _, probe_test = probe_sets(spec, task)
    result = ablate_feature(model, task, probe_test, load_probes(probes_path), feature, **options)
    return {**result, "budget": spec.budget, "run_id": spec.run_id}
