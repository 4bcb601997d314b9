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

Two random controls, each `n_random` seeded trials at the same targets (rows, layers, positions):

- Matched control (`RandomControl`, "control_*" in results; fixing §8, whose "probe bias with a
  random direction" moves x by an unmatched amount): trial t draws, from a generator seeded by
  (seed, TRIAL_STREAM, t), for each (row, layer) target a random subspace of the dimension of the
  probe's row space (rank W = V for independent rows), and for each example a random unit vector
  u in that subspace (for V = 1 a random sign). It moves x to x + ||Δ|| u, where Δ = -W+(W x + b)
  is the displacement the real ablation would apply to this very x. So the control moves every
  targeted vector by exactly the real ablation's distance, in a random direction of the same
  dimension.
- Reference control (`ReferenceControl`, "ref_control_*"; the reference's own control, §8 and
  §12.3: "random unit directions that keep the probe's offset"): trial t draws, from a generator
  seeded by (seed, REF_TRIAL_STREAM, t), for each target one Gaussian (V, d) matrix R with the
  probe's row count V and normalises each row to unit norm, shared by all examples; it keeps the
  probe's normalised offsets b̂ (b_v / ||W_v||, after centring for one-hot probes: the rows and
  offsets the real ablation uses) and applies the same projection as the ablation onto
  {z : R z + b̂ = 0}. For V = 1 that is the reference's x - (r·x + b̂) r exactly: the component
  along r is set to -b̂ and the rest of x is kept; for V > 1 it is the exact projection onto the
  V random hyperplanes where the reference sums the row-wise steps (§7.2, §12.7). Its shift
  |r·x + b̂| is not matched to the ablation's (results record its mean shift next to the
  ablation's: ref_control_mean_shift, ref_control_shift_ratio), so a drop beyond it mixes "this
  direction matters" with "this edit was smaller"; it is kept because it is what the paper
  compared with.

Top-k sweep (ablate_feature): for each k in a list (default 1..n_layers) the targets are the k
layers of lowest probe train loss of every row (§4's --topk), ablated together. The baseline is
evaluated once and shared by every k. Both controls cost 2 x n_random full evaluations per k, so
by default they are run for k = 1 only (`control_top_k`); rows at other k have no control
numbers (null / empty CSV cells). Measured on one CPU thread (addition-16, d_model 64, 4 layers,
1000 probe-test examples, n_random 32, feature carry): 53 s for k = 1 with the matched control
alone (34 evaluations), 120 s for k = 1..4 with both controls at k = 1 (69); both controls at
every k would be 261 evaluations, about 7.5x.

Evaluation (§6, fixing §12.8-9): masked teacher-forced cross-entropy per example (each row's own
scored targets, so ragged answers are fine) and greedy exact match of the whole answer span, with
each row's prompt ending before its own '='. Uncertainty: percentile bootstrap over examples with
one seeded set of resamples shared by every statistic, so differences are paired.

Results and tables: ablate_feature gives one JSON-able dict per feature with one entry per k
(`by_k`); summary_table flattens them to one row per (task, train seed, feature, k),
targets_table to one row per ablated (probe row, layer), across_seeds aggregates the summary over
training seeds. Every result carries the provenance of the process that made it
(qlf.provenance) and every table row the provenance columns of its result.
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
from .provenance import COLUMNS as PROVENANCE_COLUMNS
from .provenance import provenance, table_columns
from .tasks.base import Examples, Task

DEFAULT_BATCH = 256
# separate seeded generators: matched controls, bootstrap, reference controls
TRIAL_STREAM, BOOT_STREAM, REF_TRIAL_STREAM = 1, 2, 3
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

    def delta(self, k: int, x: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
        """The float64 moves (m, d) of target k at x (m, d) float64 of examples (m,): the edit
        is x -> x + delta."""
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
                    x64 = out[i, j].double()
                    out[i, j] = (x64 + self.delta(k, x64, examples[i])).to(out.dtype)
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

    def delta(self, k, x, examples):
        return self.targets[k].projector.displacement(x)


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

    def delta(self, k, x, examples):
        distance = self.targets[k].projector.displacement(x).norm(dim=-1, keepdim=True)
        return distance * self.direction(k, examples)


class ReferenceControl(_PositionEdits):
    """The reference's control (§8; module doc): the ablation's projection with each target's
    unit rows replaced by random unit rows, the probe's normalised offsets b̂ kept.

    Trial `trial` draws, from np.random.default_rng((seed, REF_TRIAL_STREAM, trial)), for each
    target in order one (V, d) Gaussian matrix, rows normalised to unit norm, shared by every
    example (as the reference: one draw per position row, not per example).
    """

    def __init__(self, ablation: FeatureAblation, seed: int, trial: int):
        super().__init__(ablation.targets, ablation.positions)
        self.seed, self.trial = int(seed), int(trial)
        rng = np.random.default_rng([self.seed, REF_TRIAL_STREAM, self.trial])
        self.projectors = []
        for t in self.targets:
            rows = rng.standard_normal(t.projector.W.shape)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            # Projector divides b by the row norms, which are 1 here: b̂ is kept as it is
            self.projectors.append(Projector(rows, t.projector.b))

    def delta(self, k, x, examples):
        return self.projectors[k].displacement(x)


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
                       batch_size: int = DEFAULT_BATCH,
                       others: Sequence[_PositionEdits] = ()) -> np.ndarray:
    """(n_targets, 2 + len(others)): per target, the mean ||Δ|| the ablation moves x by and the
    mean ||x||, then the mean move of each of `others` (edits of the same targets, e.g. reference
    controls), over the examples that have the target's row, in the plain model's teacher-forced
    pass (how far the probe's hyperplanes lie from the activations, relative to their size)."""
    for other in others:
        if other.targets != ablation.targets or other.n_examples != ablation.n_examples:
            raise ValueError("displacement_norms: `others` must edit the ablation's targets")
    edits = [ablation, *others]
    sums = np.zeros((len(ablation.targets), len(edits) + 2))  # sum ||Δ|| per edit, ||x||, count
    names = sorted({resid_post(t.layer) for t in ablation.targets})
    device = model.rope.device
    for lo in range(0, len(examples), batch_size):
        rows = np.arange(lo, min(len(examples), lo + batch_size))
        acts = capture(model, examples.ids[rows], names, ablation.positions[rows])
        for k, t in enumerate(ablation.targets):
            present = ablation.positions[rows, t.row] >= 0
            x = acts[resid_post(t.layer)][:, t.row][torch.as_tensor(present, device=device)]
            x, which = x.double(), torch.as_tensor(rows[present], device=device)
            sums[k, :len(edits)] += [e.delta(k, x, which).norm(dim=-1).sum().item()
                                     for e in edits]
            sums[k, len(edits):] += [x.norm(dim=-1).sum().item(), len(x)]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[:, :-1] / sums[:, -1:]
    return np.concatenate([means[:, :1], means[:, -1:], means[:, 1:-1]], axis=1)


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


def summarise(base: Evaluation, ablated: Evaluation, controls: Sequence[Evaluation] = (),
              ref_controls: Sequence[Evaluation] = (), n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy and loss of each condition with bootstrap CIs, drops and per-example arrays.

    `controls` (matched) and `ref_controls` (reference) are the trials of each random control;
    a control without trials has None for its groups ("control", "control_drop",
    "drop_beyond_control", and the "ref_" ones likewise)."""
    n = len(base.correct)
    for ev in [base, ablated, *controls, *ref_controls]:
        if ev.correct.shape != (n,) or ev.loss.shape != (n,):
            raise ValueError(f"every condition needs per-example arrays over the same {n} "
                             f"examples, got {ev.correct.shape} and {ev.loss.shape}")
    counts = bootstrap_counts(n, n_boot, seed)

    def resample(values: np.ndarray) -> np.ndarray:  # (n_boot,) means, paired across values
        return counts @ np.asarray(values, dtype=np.float64) / n

    b_acc, a_acc = base.correct.astype(np.float64), ablated.correct.astype(np.float64)
    boot_b, boot_a = resample(b_acc), resample(a_acc)
    base_acc = b_acc.mean()

    def drop(boot_other: np.ndarray, other_acc: float) -> dict:
        """Absolute and relative drop from the baseline to a condition, with paired CIs."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_boot = (boot_b - boot_other) / boot_b
        return {"abs": _num(base_acc - other_acc), "abs_ci": _ci(boot_b - boot_other),
                "rel": _num((base_acc - other_acc) / base_acc) if base_acc > 0 else None,
                "rel_ci": _ci(rel_boot) if base_acc > 0 else [None, None]}

    out = {"baseline": _condition(b_acc, base.loss, resample),
           "ablated": _condition(a_acc, ablated.loss, resample),
           "drop": drop(boot_a, a_acc.mean())}
    per_example = {
        "baseline_correct": base.correct.tolist(), "ablated_correct": ablated.correct.tolist(),
        "baseline_loss": base.loss.tolist(), "ablated_loss": ablated.loss.tolist()}
    for name, trials in (("control", controls), ("ref_control", ref_controls)):
        if not trials:
            out.update({name: None, f"{name}_drop": None, f"drop_beyond_{name}": None})
            continue
        rate = np.mean([c.correct for c in trials], axis=0)  # per example, over trials
        loss = np.mean([c.loss for c in trials], axis=0)
        group = _condition(rate, loss, resample)
        group["trial_acc"] = [float(c.correct.mean()) for c in trials]
        group["trial_loss"] = [float(c.loss.mean()) for c in trials]
        boot_c = resample(rate)
        out[name] = group
        out[f"{name}_drop"] = drop(boot_c, rate.mean())
        out[f"drop_beyond_{name}"] = {"abs": _num(rate.mean() - a_acc.mean()),
                                      "abs_ci": _ci(boot_c - boot_a)}
        per_example[f"{name}_correct_rate"] = rate.tolist()
        per_example[f"{name}_loss"] = loss.tolist()
    out["per_example"] = per_example
    return out


# -- one feature -----------------------------------------------------------------------------------

def resolve_top_k(value, n_layers: int, name: str = "top_k") -> list[int]:
    """The ks of a top-k setting: "all" (1..n_layers), one int, or a list of distinct ints, each
    in 1..n_layers; sorted."""
    if value == "all":
        return list(range(1, n_layers + 1))
    values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be 'all', an int or a non-empty list of ints, "
                         f"got {value!r}")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_layers:
            raise ValueError(f"{name}: every k must be an int in 1..{n_layers} (the model's "
                             f"layers), got {k!r} in {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: ks repeat in {value!r}")
    return sorted(int(k) for k in values)


def ablate_feature(model: Transformer, task: Task, examples: Examples, probes, feature: str,
                   top_k="all", control_top_k=(1,), n_random: int = 32, seed: int = 0,
                   n_boot: int = 1000, batch_size: int = DEFAULT_BATCH) -> dict:
    """Baseline, feature ablation and the random controls on `examples` (normally the
    probe_test split, generated with features) for the top-k layers (lowest probe train loss) of
    every probed row of `feature`, for each k of `top_k` ("all" = 1..n_layers, an int or a list;
    resolve_top_k). The controls (`n_random` trials of each kind) run only at the ks of
    `control_top_k` (a subset of top_k's; default k = 1: see the module doc on cost).
    `probes`: the FittedProbe list of this model (qlf.probes). Returns a JSON-serialisable dict:
    the feature's common fields and `by_k`, one ablate_selected result per k, ascending
    (summary_table gives the flat view)."""
    from .probes import best_layers  # the module above this one in the data flow

    n_layers = model.cfg.n_layers
    ks = resolve_top_k(top_k, n_layers, "top_k")
    control_ks = resolve_top_k(control_top_k, n_layers, "control_top_k")
    if not set(control_ks) <= set(ks):
        raise ValueError(f"control_top_k {control_ks} must be a subset of top_k {ks}")
    _check_count("n_random", n_random)
    task.feature(feature)  # fail early on a name the task does not have
    selections = {k: best_layers(probes, feature, k=k) for k in ks}
    for k, selected in selections.items():
        short = {row: len(ps) for row, ps in selected.items() if len(ps) < k}
        if short:
            raise ValueError(f"top_k {k}: rows of {feature!r} with fewer probes (layers) than "
                             f"k: {short}; lower top_k or refit the probes on every layer")
    started = time.perf_counter()
    base = evaluate(model, examples, None, batch_size)
    by_k = []
    for k, selected in selections.items():
        with_controls = k in control_ks
        by_k.append(ablate_selected(model, task, examples, feature, selected,
                                    n_random=n_random if with_controls else 0, seed=seed,
                                    n_boot=n_boot, batch_size=batch_size, baseline=base))
    print(f"[qlf ablations] {task.name} {feature}: k = {ks} (controls at {control_ks}) in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    first = by_k[0]
    return {"task": task.name, "size": int(task.size), "feature": feature,
            "kind": first["kind"], "n_layers": int(n_layers), "n_examples": len(examples),
            "n_random": n_random, "seed": int(seed), "n_boot": n_boot, "top_k": ks,
            "control_top_k": control_ks, "provenance": provenance(), "by_k": by_k}


def _check_count(name: str, value, least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def ablate_selected(model: Transformer, task: Task, examples: Examples, feature: str,
                    selected: dict[int, list], n_random: int = 32, seed: int = 0,
                    n_boot: int = 1000, batch_size: int = DEFAULT_BATCH,
                    baseline: Evaluation | None = None) -> dict:
    """The ablation of an explicit probe choice {row: [probe, ...]} (FittedProbe-like objects:
    .kind, .row, .layer, .W, .b, .train_loss, .test_loss) with `n_random` trials of each random
    control (0: no controls; their groups are None). `baseline`: the plain model's evaluation of
    `examples` if already made (ablate_feature shares one across k)."""
    _check_count("n_random", n_random, least=0)
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
    if baseline is not None and len(baseline.correct) != len(examples):
        raise ValueError(f"the baseline has {len(baseline.correct)} examples, not {len(examples)}")
    ablation = FeatureAblation.from_probes(selected, examples.features[feature].positions)
    k = max(len(v) for v in selected.values())
    base = evaluate(model, examples, None, batch_size) if baseline is None else baseline
    ablated = evaluate(model, examples, ablation, batch_size)
    print(f"[qlf ablations] {task.name} {feature} k={k}: accuracy {np.mean(base.correct):.3f} "
          f"-> {np.mean(ablated.correct):.3f} ablated", file=sys.stderr, flush=True)
    started = time.perf_counter()
    controls, ref_trials, ref_controls = [], [], []
    for t in range(n_random):
        controls.append(evaluate(model, examples, RandomControl(ablation, seed, t), batch_size))
        ref_trials.append(ReferenceControl(ablation, seed, t))
        ref_controls.append(evaluate(model, examples, ref_trials[-1], batch_size))
        if t == 0 or t + 1 == n_random or (t + 1) % 8 == 0:
            print(f"[qlf ablations] {task.name} {feature} k={k}: random controls "
                  f"{t + 1}/{n_random} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    shifts = displacement_norms(model, examples, ablation, batch_size, others=ref_trials)
    ref_shift = shifts[:, 2:].mean(1) if n_random else np.full(len(shifts), np.nan)
    result = {
        "task": task.name, "size": int(task.size), "feature": feature, "kind": spec.kind,
        "k": k, "n_examples": len(examples), "n_random": n_random, "seed": int(seed),
        "n_boot": n_boot,
        "targets": [{"row": t.row, "layer": t.layer, "kind": t.kind,
                     "n_directions": len(t.projector.W),
                     "rank": t.projector.rank, "train_loss": _num(t.train_loss),
                     "test_loss": _num(t.test_loss), "mean_shift": _num(shift),
                     "mean_norm": _num(norm), "ref_control_mean_shift": _num(ref)}
                    for t, (shift, norm), ref in zip(ablation.targets, shifts[:, :2], ref_shift)],
        "shift_ratio": _num(np.nanmean(shifts[:, 0]) / np.nanmean(shifts[:, 1])),
        "ref_control_shift_ratio": _num(np.nanmean(ref_shift) / np.nanmean(shifts[:, 1]))
                                   if n_random else None,
        "rows": sorted({t.row for t in ablation.targets}),
        "layers": sorted({t.layer for t in ablation.targets}),
        "provenance": provenance(),
    }
    result.update(summarise(base, ablated, controls, ref_controls, n_boot=n_boot, seed=seed))
    return result


# -- tables ----------------------------------------------------------------------------------------

_NESTED = {"baseline": ("acc", "loss"), "ablated": ("acc", "loss"), "control": ("acc", "loss"),
           "ref_control": ("acc", "loss"), "drop": ("abs", "rel"), "control_drop": ("abs", "rel"),
           "ref_control_drop": ("abs", "rel"), "drop_beyond_control": ("abs",),
           "drop_beyond_ref_control": ("abs",)}
# the identifying columns first, the provenance columns last
_KEY_COLUMNS = ["task", "size", "budget", "run_id", "train_seed", "feature", "kind", "k"]


def _entries(results: Iterable[dict]) -> list[dict]:
    """Each result's per-k entries (an ablate_feature result: its `by_k`; an ablate_selected
    result: itself), with the result's top-level scalars (train_seed, budget, ...) merged in."""
    out = []
    for result in results:
        if "by_k" not in result:
            out.append(result)
            continue
        top = {key: value for key, value in result.items()
               if key != "by_k" and (value is None or isinstance(value, (str, int, float, bool,
                                                                          dict)))}
        if not result["by_k"]:
            raise ValueError(f"ablation result of {result.get('feature')!r} has no k entries")
        out += [{**top, **entry} for entry in result["by_k"]]
    return out


def _check_entry(entry: dict) -> None:
    for key in ("train_seed", "provenance", "targets"):
        if key not in entry:
            raise ValueError(f"ablation result of {entry.get('task')!r} {entry.get('feature')!r} "
                             f"has no {key!r} (an ablate_feature result; the pipeline's "
                             f"ablate_feature script adds train_seed)")


def summary_row(result: dict) -> dict:
    """One flat row of one k of an ablation result: every top-level scalar (task, size, feature,
    k, train_seed, any key a caller added such as the budget), the targets as 'row:layer' text,
    the distinct layers as 'layer layer' text, the displacement ratios (pooled, and the min and
    max over targets), each statistic with its CI as `{group}_{stat}`, `{group}_{stat}_lo`,
    `{group}_{stat}_hi` (empty where a control was not run), and the result's provenance."""
    _check_entry(result)
    row = {key: value for key, value in result.items()
           if value is None or isinstance(value, (str, int, float, bool))}
    row["targets"] = " ".join(f"{t['row']}:{t['layer']}" for t in result["targets"])
    row["layers"] = " ".join(str(layer) for layer in sorted({t["layer"]
                                                            for t in result["targets"]}))
    row["n_targets"] = len(result["targets"])
    ratios = [_ratio(t) for t in result["targets"]]
    ratios = [r for r in ratios if r is not None]
    row["shift_ratio_min"] = min(ratios) if ratios else None
    row["shift_ratio_max"] = max(ratios) if ratios else None
    for group, stats in _NESTED.items():
        if group not in result:
            raise ValueError(f"not an ablate_feature result: no {group!r} entry")
        for stat in stats:
            name = f"{group}_{stat}"
            values = result[group] or {}
            row[name] = values.get(stat)
            row[name + "_lo"], row[name + "_hi"] = values.get(stat + "_ci", [None, None])
    row.update(table_columns(result["provenance"]))
    return row


def _ratio(target: dict) -> float | None:
    shift, norm = target.get("mean_shift"), target.get("mean_norm")
    return None if shift is None or not norm else shift / norm


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Key columns first, provenance last; columns of numbers and None (a control not run) as
    float with NaN."""
    for col in table.columns:
        values = table[col]
        if values.dtype == object and values.map(
                lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        ).all():
            table[col] = values.astype(float)
    first = [c for c in _KEY_COLUMNS if c in table.columns]
    last = [c for c in PROVENANCE_COLUMNS if c in table.columns]
    middle = [c for c in table.columns if c not in first and c not in last]
    return table[first + middle + last]


def summary_table(results: Iterable[dict]) -> pd.DataFrame:
    """Tidy table, one row per (task, train seed, feature, k), for
    results/ablations/summary.csv (summary_row), in the order of the results (each one's ks
    ascending)."""
    rows = [summary_row(entry) for entry in _entries(results)]
    if not rows:
        raise ValueError("no ablation results to summarise")
    table = _ordered(pd.DataFrame(rows))
    key = [c for c in ("task", "size", "budget", "train_seed", "feature", "k")
           if c in table.columns]
    repeated = table.duplicated(key)
    if repeated.any():
        raise ValueError(f"ablation results repeat ({', '.join(key)}): "
                         f"{table.loc[repeated, key].values.tolist()}")
    return table


def targets_table(results: Iterable[dict]) -> pd.DataFrame:
    """Tidy table, one row per (task, train seed, feature, k, probe row, layer) ablated, for
    results/ablations/targets.csv: the probe's kind, directions and rank, its train/test loss,
    `layer_rank` (1 = the row's best layer), the ablation's mean shift ||Δ||, the mean ||x||,
    their ratio, and the reference control's mean shift (empty where it was not run)."""
    rows = []
    for entry in _entries(results):
        _check_entry(entry)
        ids = {key: entry[key] for key in _KEY_COLUMNS if key in entry}
        seen: dict[int, int] = {}
        for t in entry["targets"]:
            seen[t["row"]] = seen.get(t["row"], 0) + 1
            rows.append({**ids, "row": t["row"], "layer": t["layer"],
                         "layer_rank": seen[t["row"]], "probe_kind": t["kind"],
                         "n_directions": t["n_directions"], "probe_rank": t["rank"],
                         "train_loss": t["train_loss"], "test_loss": t["test_loss"],
                         "mean_shift": t["mean_shift"], "mean_norm": t["mean_norm"],
                         "ratio": _ratio(t),
                         "ref_control_mean_shift": t.get("ref_control_mean_shift"),
                         **table_columns(entry["provenance"])})
    if not rows:
        raise ValueError("no ablation results to tabulate")
    return _ordered(pd.DataFrame(rows))


# drops summarised over training seeds: (column in the summary, stem in across_seeds)
_SEED_STATS = ["drop_rel", "drop_abs", "control_drop_rel", "control_drop_abs",
               "ref_control_drop_rel", "ref_control_drop_abs", "drop_beyond_control_abs",
               "drop_beyond_ref_control_abs", "baseline_acc", "ablated_acc", "control_acc",
               "ref_control_acc"]


def _per_seed(rows: pd.DataFrame, stat: str) -> str:
    """'s0 0.52 [0.49, 0.55]; s1 ...' (empty CI ends as nan)."""
    def fmt(value) -> str:
        return "nan" if pd.isna(value) else f"{value:.3f}"
    return "; ".join(f"s{int(r.train_seed)} {fmt(r[stat])} [{fmt(r[stat + '_lo'])}, "
                     f"{fmt(r[stat + '_hi'])}]" for _, r in rows.iterrows())


def _joined(values: pd.Series):
    """One value if all rows agree, else the distinct values as '; '-joined text."""
    distinct = list(dict.fromkeys(values.tolist()))
    return distinct[0] if len(distinct) == 1 else "; ".join(str(v) for v in distinct)


def across_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """The summary table aggregated over training seeds, one row per (task, feature, k), for
    results/ablations/across_seeds.csv: n_seeds, train_seeds ('0 1 2'), the mean, min and max
    over seeds of each drop and accuracy (`{stat}_mean`, `_min`, `_max`; NaN where a control
    was not run), the per-seed relative and absolute drops with their CIs as text
    (`per_seed_drop_rel`, `per_seed_drop_abs`) and the provenance columns (one value if every
    seed's result agrees, else the distinct values joined by '; ')."""
    needed = ["task", "feature", "k", "train_seed"] + [
        f"{s}{e}" for s in ("drop_rel", "drop_abs") for e in ("", "_lo", "_hi")] + _SEED_STATS
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"across_seeds: the summary table lacks columns {missing}")
    if table.empty:
        raise ValueError("across_seeds: the summary table is empty")
    key = ["task", "feature", "k"]
    repeated = table.duplicated(key + ["train_seed"])
    if repeated.any():
        raise ValueError(f"across_seeds: (task, feature, k, train_seed) repeats: "
                         f"{table.loc[repeated, key + ['train_seed']].values.tolist()}")
    rows = []
    for (task, feature, k), group in table.groupby(key, sort=False):
        group = group.sort_values("train_seed")
        row = {"task": task}
        if "size" in group.columns:
            row["size"] = _joined(group["size"])
        row.update(feature=feature, k=int(k), n_seeds=len(group),
                   train_seeds=" ".join(str(int(s)) for s in group.train_seed))
        for stat in _SEED_STATS:
            values = pd.to_numeric(group[stat], errors="coerce")
            row.update({f"{stat}_mean": values.mean(), f"{stat}_min": values.min(),
                        f"{stat}_max": values.max()})
        row["per_seed_drop_rel"] = _per_seed(group, "drop_rel")
        row["per_seed_drop_abs"] = _per_seed(group, "drop_abs")
        row.update({c: _joined(group[c]) for c in PROVENANCE_COLUMNS if c in group.columns})
        rows.append(row)
    return pd.DataFrame(rows)


def ablate_weights(weights, probes_path, feature: str, graphs_dir=None, **options) -> dict:
    """The pipeline's unit of work: ablate `feature` in the model saved at `weights` (a qlf.train
    weights file; missing -> FileNotFoundError) with the probes fitted on it (qlf.probes
    save_probes file), evaluated on the task's probe-test split, for every k of `top_k`.
    `options` go to ablate_feature; the result also names the model's budget and run and
    carries this process's provenance (the caller adds train_seed)."""
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
