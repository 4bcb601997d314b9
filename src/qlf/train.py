"""One sweep (K >= 1 runs of one shape, trained as one stacked model) to one JSON record per run
(pipeline.md §6). A single run is a sweep of one: there is one training path.

    sweep -> task, one Stream(task, seed, Layout) per data seed (val, test, training stream)
          -> K Transformers (torch.manual_seed(model_seed) each, PyTorch default init),
             stacked: flat fp32 parameters (K, P), run through one Transformer by
             torch.func.functional_call (qlf.model's stacked layers: one batched matmul for K)
          -> exactly `steps` AdamW steps, each member with its own lr schedule (lr_at), its own
             AdamW state and its own gradient clip (by its own gradient norm), one pass over its
             own data seed's stream
          -> val loss at ~val_points log-spaced steps on the first val_curve_examples of the
             val split, and at the end on all of it (the scaling-law number), all members in one
             pass; greedy exact-match accuracy on the test split (KV-cached, batched decoding)
          -> {"spec": ..., "summary": ...} per member, written atomically

Members are independent: no operation mixes two members' rows, so a member's numbers equal those
of the same spec trained alone up to float rounding (a batched matmul sums in another order than
a plain one; tests/test_sweep.py checks 1e-5 relative). A member whose loss turns NaN/inf is frozen
(its lr and gradients masked to zero) and gets a "diverged" record; the others are untouched.

Lightning Fabric picks the device (one CUDA device when present, else the CPU) and precision
("32" -> fp32, "bf16-mixed" -> bf16 autocast, also used for evaluation). The loop is plain
PyTorch so that its per-step overhead stays small.

With a run_dir the sweep writes resume checkpoints (parameters, optimizer state, step, loss sums,
val curves; atomically, every ckpt_every_s seconds): the same call after a crash or `kill -9`
continues from the last one and ends with the same numbers (bit-identical on CPU); the records'
arrival removes it. A one-member sweep also writes weights at `save_steps` (0 = the initial
weights) and, with save_final, the final weights, which `load_model` reads. With a keep_dir,
every finished member's record is also kept there and reused by a later sweep that holds the same
spec (same qlf source, torch and device), so growing a sweep trains only its new members.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .compute import PRECISIONS, RunSpec, make_spec
from .data import Layout, Stream
from .model import (IGNORE, ModelConfig, Transformer, count_parameters, exact_match,
                    forward_flops_per_sequence, greedy_decode, masked_targets)
from .provenance import provenance
from .sweep import FUSABLE, SweepSpec
from .tasks import get_task

CHUNK_EXAMPLES = 8192  # training examples per member generated (and moved to the device) at once
LOSS_TOKENS = 8192  # tokens per member per validation batch (activations stay in cache on a CPU)
DECODE_TOKENS = 32768  # tokens per decoding batch, all members together
CHECK_EVERY = 32  # steps between checks that the training losses are finite
PROGRESS_EVERY_S = 30.0  # seconds between progress lines in a log (0.5 s on a terminal)


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


# -- schedule and file names ---------------------------------------------------------------------

def lr_at(step: int, spec: RunSpec) -> float:
    """Learning rate of optimizer step `step` (0-based), pipeline.md §6.4.

    W = int(warmup_ratio * steps): linear warmup from warmup_start * lr over steps 0..W-1, then a
    cosine from lr down to min_lr_ratio * lr at step = steps (W = 0 starts at the peak).
    """
    peak, total, warm = spec.lr, spec.steps, spec.warmup_steps
    if not 0 <= step <= total:
        raise ValueError(f"step {step} outside 0..{total}")
    if step < warm:
        return peak * (spec.warmup_start + (1 - spec.warmup_start) * step / warm)
    floor = spec.min_lr_ratio * peak
    return floor + (peak - floor) * (1 + math.cos(math.pi * (step - warm) / (total - warm))) / 2


def val_steps(steps: int, points: int) -> list[int]:
    """About `points` log-spaced steps in 1..steps, always including the last."""
    if points < 2:
        return [steps]
    grid = np.unique(np.round(np.logspace(0, math.log10(steps), points)).astype(int))
    return sorted(set(grid.tolist()) | {steps})


def resume_path(run_dir) -> Path:
    return Path(run_dir) / "resume.pt"


def weights_path(run_dir, step: int) -> Path:
    """Weights after `step` optimizer steps (0 = the initialisation)."""
    return Path(run_dir) / f"weights_step{step:06d}.pt"


def final_weights_path(run_dir) -> Path:
    return Path(run_dir) / "weights_final.pt"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def save_weights(path: Path, model: Transformer, spec: RunSpec, step: int) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_save({"model": state, "config": model.cfg.to_dict(), "spec": spec.to_dict(),
                  "step": step}, Path(path))


def resolve_weights(path) -> Path:
    """A weights file as given, or for a run folder kept with save_steps (e.g. the pipeline's
    `.../steps`) its last step's file: the final model when the run finished."""
    path = Path(path)
    if not path.is_dir():
        return path
    steps = sorted(path.glob("weights_step*.pt"))  # zero-padded: name order is step order
    if not steps:
        raise FileNotFoundError(f"no weights_step*.pt in {path}")
    return steps[-1]


def load_weights(path, device="cpu") -> tuple[Transformer, dict]:
    """(model, meta) from a weights file; meta holds "spec" (a dict) and "step"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path} (train with --save-steps/--save-final "
                                f"and a --run-dir to write one)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = Transformer(ModelConfig(**saved["config"]))
    model.load_state_dict(saved["model"])  # strict: every parameter must be there
    return model.to(device), {"spec": saved["spec"], "step": saved["step"]}


def load_model(path, device="cpu") -> Transformer:
    """The Transformer saved at `path` (FileNotFoundError when missing, never random weights)."""
    return load_weights(path, device)[0]


# -- evaluation ----------------------------------------------------------------------------------

def evaluate_loss(model: Transformer, ids: torch.Tensor, loss_mask: torch.Tensor) -> float:
    """Mean CE over every scored token of the split (batch-size independent)."""
    return evaluate_losses(model, ids[None], loss_mask[None])[0]


def evaluate_accuracy(model: Transformer, ids: torch.Tensor, loss_mask: torch.Tensor,
                      eq_id: int) -> float:
    """Greedy exact-match rate of the whole answer span ('=', answer, first EOS)."""
    return evaluate_accuracies(model, ids[None], loss_mask[None], eq_id)[0]


# -- the stacked model and its optimizer --------------------------------------------------------

class Stack:
    """K Transformers of one shape as one model: their parameters are the rows of one flat fp32
    leaf tensor (K, P), viewed per parameter and run through a single Transformer `net` (whose
    own parameters are never used) with functional_call. Rows of a batch are K member blocks."""

    def __init__(self, nets: list[Transformer], device):
        self.net = copy.deepcopy(nets[0]).to(device).requires_grad_(False)
        self.k = len(nets)
        self.layout = [(name, p.shape, p.numel()) for name, p in self.net.named_parameters()]
        self.flat = torch.stack([torch.cat([p.detach().reshape(-1).float() for p in n.parameters()])
                                 for n in nets]).to(device).requires_grad_()

    @property
    def cfg(self) -> ModelConfig:
        return self.net.cfg

    @property
    def rope(self) -> torch.Tensor:  # greedy_decode reads the device from it
        return self.net.rope

    def params(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        flat = self.flat if flat is None else flat
        out, offset = {}, 0
        for name, shape, size in self.layout:
            out[name] = flat[:, offset:offset + size].view(len(flat), *shape)
            offset += size
        return out

    def __call__(self, ids, hooks=None, start: int = 0, cache=None) -> torch.Tensor:
        return torch.func.functional_call(self.net, self.params(), (ids, hooks, start, cache))

    def member(self, i: int) -> Transformer:
        """Member i as a plain Transformer (a copy of its current weights, on the stack's device)."""
        net = Transformer(self.cfg).to(self.flat.device)
        with torch.no_grad():
            net.load_state_dict({name: p[0] for name, p in
                                 self.params(self.flat[i:i + 1].detach()).items()})
        return net.eval()


class StackedAdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments) on a Stack's
    flat (K, P) parameters, with a learning rate per member, each member's gradient clipped by
    its own norm (torch's clip_grad_norm_ rule), and frozen members left unchanged."""

    def __init__(self, flat: torch.Tensor, betas, eps: float, weight_decay: float,
                 grad_clip: float):
        self.flat, self.betas, self.eps = flat, betas, eps
        self.weight_decay, self.grad_clip = weight_decay, grad_clip
        self.exp_avg = torch.zeros_like(flat, requires_grad=False)
        self.exp_avg_sq = torch.zeros_like(flat, requires_grad=False)
        self.t = 0

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """lr (K,) this step's learning rates; active (K,) bool, None = all members."""
        p, g, (b1, b2) = self.flat, self.flat.grad, self.betas
        if active is not None:  # a frozen member's NaN gradient must not reach its state
            g = torch.where(active[:, None], g, 0.0)
        if self.grad_clip > 0:
            norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
            g = g * (self.grad_clip / (norm + 1e-6)).clamp(max=1.0)
        self.t += 1
        lr = lr[:, None].to(p.dtype)
        new = p * (1 - lr * self.weight_decay)
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - b2 ** self.t)).add_(self.eps)
        new -= (lr / (1 - b1 ** self.t)) * self.exp_avg / denom
        p.copy_(new if active is None else torch.where(active[:, None], new, p))
        p.grad = None

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.t = int(state["t"])


def member_losses(logits: torch.Tensor, targets: torch.Tensor, k: int,
                  reduce: bool = True) -> torch.Tensor:
    """Mean CE of each member's scored targets: (K,) from logits (K*B, T, V) and targets
    (K*B, T-1); with reduce=False the (K,) sums and counts as a (2, K) tensor instead."""
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                         reduction="none").view(k, -1)
    counts = (targets != IGNORE).view(k, -1).sum(1)
    if not reduce:
        return torch.stack((ce.sum(1, dtype=torch.float64), counts.double()))
    return ce.sum(1) / counts


@torch.no_grad()
def evaluate_losses(stack: Stack, ids: torch.Tensor, loss_mask: torch.Tensor) -> list[float]:
    """Each member's mean CE over every scored token of its split: ids, loss_mask (K, N, T).
    A plain Transformer is a stack of one here."""
    k, n, t = ids.shape
    totals = torch.zeros(2, k, dtype=torch.float64, device=ids.device)
    step = max(1, LOSS_TOKENS // t)
    for i in range(0, n, step):
        rows = ids[:, i:i + step].reshape(-1, t)
        targets = masked_targets(rows, loss_mask[:, i:i + step].reshape(-1, t))
        totals += member_losses(stack(rows), targets, k, reduce=False)
    return (totals[0] / totals[1]).tolist()


@torch.no_grad()
def evaluate_accuracies(stack: Stack, ids: torch.Tensor, loss_mask: torch.Tensor,
                        eq_id: int) -> list[float]:
    """Each member's greedy exact-match rate on its split (ids, loss_mask (K, N, T)); all members
    decode together, each member's rows in order of their '=' position (so that a batch shares
    nearly one prompt length and the cached decoding steps one position at a time only briefly)."""
    k, n, t = ids.shape
    eq_pos = (ids == eq_id).int().argmax(2)  # (K, N)
    order = torch.argsort(eq_pos, dim=1, stable=True)
    ids = torch.take_along_dim(ids, order[..., None], 1)
    loss_mask = torch.take_along_dim(loss_mask, order[..., None], 1)
    eq_pos = torch.take_along_dim(eq_pos, order, 1)
    correct = torch.zeros(k, dtype=torch.long, device=ids.device)
    step = max(1, DECODE_TOKENS // (t * k))
    for i in range(0, n, step):
        rows, mask = ids[:, i:i + step].reshape(-1, t), loss_mask[:, i:i + step].reshape(-1, t)
        # unscored positions (another segment's prompt, padding) are fed, not generated
        generated = greedy_decode(stack, rows, eq_pos[:, i:i + step].reshape(-1),
                                  given=mask == 0)
        correct += exact_match(generated, rows, mask).view(k, -1).sum(1)
    return (correct.double() / n).tolist()


# -- building a sweep ----------------------------------------------------------------------------

def as_sweep(sweep) -> SweepSpec:
    """A SweepSpec, from a SweepSpec, one RunSpec or a list of RunSpecs."""
    if isinstance(sweep, SweepSpec):
        return sweep
    if isinstance(sweep, RunSpec):
        return SweepSpec((sweep,))
    if isinstance(sweep, (list, tuple)) and sweep and all(isinstance(s, RunSpec) for s in sweep):
        return SweepSpec(tuple(sweep), FUSABLE)
    raise ValueError(f"expected a qlf.sweep.SweepSpec or qlf.compute.RunSpec(s), got "
                     f"{type(sweep).__name__}")


def build(sweep: SweepSpec, task):
    """(fabric, stack, optimizer): the freshly initialised members (each from its own
    model_seed, initialised on the CPU so that any device gets the same weights), stacked on
    Fabric's device, and their AdamW."""
    fabric = _fabric(sweep.first.precision)
    nets = []
    for spec in sweep.members:
        torch.manual_seed(spec.model_seed)
        nets.append(Transformer(ModelConfig(vocab_size=task.vocab_size, seq_len=task.seq_len,
                                            d_model=spec.d_model, n_layers=spec.n_layers,
                                            n_heads=spec.n_heads, norm_eps=spec.norm_eps)))
    stack = Stack(nets, fabric.device)
    s = sweep.first
    optimizer = StackedAdamW(stack.flat, (s.beta1, s.beta2), 1e-8, s.weight_decay, s.grad_clip)
    return fabric, stack, optimizer


def train_step(fabric, stack: Stack, optimizer: StackedAdamW, ids, targets, lr: torch.Tensor,
               active: torch.Tensor | None = None) -> torch.Tensor:
    """One optimizer step of every member on its block of the batch; returns the (K,) losses."""
    with fabric.autocast():
        losses = member_losses(stack(ids), targets, stack.k)
    fabric.backward(losses.sum())  # members share no parameter: each gets its own gradient
    optimizer.step(lr, active)
    return losses.detach()


def _check_request(sweep: SweepSpec, outs, run_dir, save_steps, save_final,
                   ckpt_every_s) -> list[int]:
    if len(outs) != sweep.k:
        raise ValueError(f"{len(outs)} output paths for a sweep of {sweep.k} members")
    steps = sorted({int(s) for s in save_steps})
    bad = [s for s in steps if not 0 <= s <= sweep.first.steps]
    if bad:
        raise ValueError(f"save_steps {bad} outside 0..{sweep.first.steps} (the run's steps)")
    if (steps or save_final) and run_dir is None:
        raise ValueError("save_steps and save_final need a run_dir to write the weights to")
    if (steps or save_final) and sweep.k > 1:
        raise ValueError("save_steps and save_final keep one run's weights: train that run "
                         "alone (a sweep of one)")
    if not ckpt_every_s >= 0:
        raise ValueError(f"ckpt_every_s must be >= 0 seconds, got {ckpt_every_s}")
    return steps


def _fabric(precision: str):
    """One device (the first GPU, else the CPU), one process: a plain environment, so that a
    SLURM allocation is never mistaken for a multi-process job."""
    # lightning_fabric, Lightning's own lightweight package: the `lightning` umbrella package
    # brings torchmetrics, whose import alone (scipy.signal, matplotlib) took ~1.2 s per job
    from lightning_fabric import Fabric
    from lightning_fabric.plugins.environments import LightningEnvironment
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} not in {PRECISIONS}")
    return Fabric(accelerator="auto", devices=1, plugins=[LightningEnvironment()],
                  precision="32-true" if precision == "32" else precision)


def _to_device(ids: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(ids)).to(device).long()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _versions() -> dict:
    import lightning_fabric
    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning_fabric.__version__, "numpy": np.__version__, "qlf": __version__}


class Stopwatch:
    """Seconds spent per phase, accumulated across resumed processes: `with watch("train_s"):`."""

    PHASES = ("setup_s", "data_s", "train_s", "eval_s", "io_s")

    def __init__(self, totals: dict | None = None):
        self.totals = {k: 0.0 for k in self.PHASES} | (totals or {})
        self.phase, self.since = None, 0.0

    def __call__(self, phase: str):
        self.phase = phase
        return self

    def __enter__(self):
        self.since = time.perf_counter()

    def __exit__(self, *exc):
        self.totals[self.phase] += time.perf_counter() - self.since


class Progress:
    """Progress on stderr: a line every PROGRESS_EVERY_S in a log; on a terminal one line that
    updates twice a second. Step, loss (min..max over members), examples/s, time left."""

    def __init__(self, enabled: bool, steps: int, examples_per_step: int, step: int):
        self.enabled, self.steps, self.per_step = enabled, steps, examples_per_step
        self.tty = enabled and sys.stderr.isatty()
        self.every = 0.5 if self.tty else PROGRESS_EVERY_S
        self.start_step, self.start = step, time.perf_counter()
        self.last = self.start

    def update(self, step: int, losses: torch.Tensor, active) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < self.every and step < self.steps):
            return
        self.last = now
        rate = (step - self.start_step) / max(now - self.start, 1e-9)  # steps/s, this process
        live = losses if active is None else losses[active]
        loss = (f"{float(live.min()):.4f}..{float(live.max()):.4f}" if len(live) > 1
                else f"{float(live.max()):.4f}" if len(live) else "-")
        left = (self.steps - step) / rate if rate > 0 else float("nan")
        line = (f"[qlf train] step {step}/{self.steps} loss {loss} "
                f"{rate * self.per_step:.0f} examples/s, {_duration(left)} left")
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


# -- the sweep -----------------------------------------------------------------------------------

def train_sweep(sweep, out_jsons, run_dir=None, graphs_dir=None, save_steps=(),
                save_final: bool = False, ckpt_every_s: float = 300.0, progress: bool = True,
                keep_dir=None) -> list[dict]:
    """Train a sweep and write one record per member to `out_jsons` (in member order); returns
    the records. A member whose loss turns NaN/inf gets a "diverged" record.

    run_dir: folder for the sweep's resume checkpoint and (one-member sweeps) saved weights. An
    existing resume checkpoint there is continued (it must belong to the same members).
    keep_dir: folder where finished members' records are kept; a member whose kept record has
    the same spec and was made by the same qlf source, torch and device is not trained again.
    save_steps: steps whose weights to keep (0 = initial weights); save_final: the final weights.
    ckpt_every_s: seconds between resume checkpoints (0 = after every step).
    Raises ValueError on a bad request before any work.
    """
    t_start = time.perf_counter()
    sweep = as_sweep(sweep)
    outs = [Path(o) for o in out_jsons]
    save_steps = _check_request(sweep, outs, run_dir, save_steps, save_final, ckpt_every_s)
    records = _reuse_kept(sweep, outs, keep_dir, progress)
    todo = [i for i in range(sweep.k) if i not in records]
    if todo:
        trained = _train(SweepSpec(tuple(sweep.members[i] for i in todo), sweep.fuse),
                         [outs[i] for i in todo], run_dir, graphs_dir, save_steps, save_final,
                         ckpt_every_s, progress, False, t_start)
        for i, record in zip(todo, trained):
            records[i] = record
            if keep_dir is not None:
                _atomic_write_json(record, Path(keep_dir) / f"{sweep.members[i].run_id}.json")
    return [records[i] for i in range(sweep.k)]


def train_run(spec: RunSpec, out_json, run_dir=None, graphs_dir=None, save_steps=(),
              save_final: bool = False, ckpt_every_s: float = 300.0,
              progress: bool = True) -> dict:
    """Train one run (a sweep of one) and write its record to `out_json`; returns the record.
    Unlike a sweep, a run whose loss diverges raises DivergedError and writes no record."""
    t_start = time.perf_counter()
    if not isinstance(spec, RunSpec):
        raise ValueError(f"spec must be a qlf.compute.RunSpec, got {type(spec).__name__}")
    sweep = SweepSpec((spec,))
    save_steps = _check_request(sweep, [out_json], run_dir, save_steps, save_final, ckpt_every_s)
    return _train(sweep, [Path(out_json)], run_dir, graphs_dir, save_steps, save_final,
                  ckpt_every_s, progress, True, t_start)[0]


def _reuse_kept(sweep: SweepSpec, outs: list[Path], keep_dir, progress: bool) -> dict:
    """{member index: record} of the members whose kept record can stand in for training them;
    each is written to its output path."""
    if keep_dir is None:
        return {}
    device = _device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    same = ("qlf_source_sha256", "torch")
    reused = {}
    for i, spec in enumerate(sweep.members):
        kept = Path(keep_dir) / f"{spec.run_id}.json"
        if not kept.is_file():
            continue
        record = json.loads(kept.read_text())
        made = record["summary"].get("provenance", {})
        if (record["spec"] == spec.to_dict() and record["summary"].get("device", device) == device
                and all(made.get(k) == provenance()[k] for k in same)):
            _atomic_write_json(record, outs[i])
            reused[i] = record
            _say(progress, f"{spec.run_id}: reusing the record kept in {kept}")
    return reused


def _train(sweep: SweepSpec, outs: list[Path], run_dir, graphs_dir, save_steps, save_final,
           ckpt_every_s, progress, raise_diverged: bool, t_start: float) -> list[dict]:
    s, members, K = sweep.first, sweep.members, sweep.k
    task = get_task(s.task, s.size, graphs_dir=graphs_dir)
    layout = Layout(s.n_val, s.n_test, s.n_probe_train, s.n_probe_test)
    streams = {seed: Stream(task, seed, layout) for seed in dict.fromkeys(m.seed for m in members)}
    for stream in streams.values():
        if s.train_examples > stream.n_available("train"):
            raise ValueError(f"{s.task} size {s.size}: the run needs {s.train_examples} "
                             f"training examples, the stream holds {stream.n_available('train')}")
    fabric, stack, optimizer = build(sweep, task)
    device, B = fabric.device, s.batch_size
    monitors = _monitors(sweep, task, streams, device)
    state = _start(sweep, run_dir, stack, optimizer, monitors, save_steps)
    watch = Stopwatch(state["timing"])
    wall_before = state["wall_s"]  # spent by earlier processes of this sweep
    watch.totals["setup_s"] += time.perf_counter() - t_start

    with watch("data_s"):
        def split(name):
            examples = {seed: st.examples(name, features=False) for seed, st in streams.items()}
            return (torch.stack([_to_device(examples[m.seed].ids, device) for m in members]),
                    torch.stack([_to_device(examples[m.seed].loss_mask, device) for m in members]))
        val_ids, val_mask = split("val")
        test_ids, test_mask = split("test")

    val_at = set(val_steps(s.steps, s.val_points))
    step, diverged = state["step"], state["diverged"]
    loss_sum = torch.tensor(state["loss_sum"], dtype=torch.float64, device=device)
    loss = torch.tensor(state["loss_last"], device=device)  # the last step's losses
    active = _active(diverged, device)
    if step == 0 and monitors:  # the random-init baseline of each member
        with watch("eval_s"):
            _observe(monitors, sweep, stack, 0, diverged)
    last_ckpt = time.perf_counter()
    bar = Progress(progress, s.steps, B * K, step)
    _say(progress, f"{s.task} n{s.size} {sweep.sweep_id} budget {s.budget:.3g}: {K} member"
                   f"{'s' if K > 1 else ''} ({', '.join(sweep.run_ids)}), {s.steps} steps of {B} "
                   f"on {_device_name(device)}" + (f", resuming after step {step}" if step else ""))
    while step < s.steps and not all(d is not None for d in diverged):
        with watch("data_s"):  # a chunk of consecutive batches of each seed's training stream
            k = min(max(1, CHUNK_EXAMPLES // B), s.steps - step)
            chunks = {seed: st.examples("train", step * B, k * B, features=False)
                      for seed, st in streams.items()}
            ids = {seed: _to_device(c.ids, device) for seed, c in chunks.items()}
            targets = {seed: masked_targets(ids[seed], _to_device(c.loss_mask, device))
                       for seed, c in chunks.items()}
        for i in range(k):
            with watch("train_s"):
                rows = slice(i * B, (i + 1) * B)
                batch = torch.cat([ids[m.seed][rows] for m in members])
                batch_targets = torch.cat([targets[m.seed][rows] for m in members])
                lr = torch.tensor([lr_at(step, m) for m in members], device=device)
                loss = train_step(fabric, stack, optimizer, batch, batch_targets, lr, active)
                loss_sum += loss
                step += 1
                if step % CHECK_EVERY == 0 or step in val_at or step == s.steps:
                    active = _freeze_diverged(loss_sum, step, sweep, diverged, raise_diverged,
                                              device, progress)
            if step in val_at:  # the curve on a subset; the final point on the whole split
                n = val_ids.shape[1] if step == s.steps else s.val_curve_examples
                with watch("eval_s"):
                    with fabric.autocast():
                        losses = evaluate_losses(stack, val_ids[:, :n], val_mask[:, :n])
                    for j, value in enumerate(losses):
                        if diverged[j] is None:
                            state["val_curves"][j].append([step, value])
                    _observe(monitors, sweep, stack, step, diverged)
            if run_dir is not None:
                with watch("io_s"):
                    if step in save_steps:
                        save_weights(weights_path(run_dir, step), stack.member(0), s, step)
                    if step == s.steps and save_final:
                        save_weights(final_weights_path(run_dir), stack.member(0), s, step)
                    if time.perf_counter() - last_ckpt >= ckpt_every_s:
                        active = _freeze_diverged(loss_sum, step, sweep, diverged,
                                                  raise_diverged, device, progress)
                        state.update(step=step, loss_sum=loss_sum.tolist(),
                                     loss_last=loss.tolist(), timing=dict(watch.totals),
                                     wall_s=wall_before + time.perf_counter() - t_start)
                        _atomic_save(_resume_state(state, sweep, stack, optimizer, monitors),
                                     resume_path(run_dir))
                        last_ckpt = time.perf_counter()
            bar.update(step, loss, active)
            if all(d is not None for d in diverged):
                break
    bar.close()

    with watch("eval_s"), fabric.autocast():
        test_acc = evaluate_accuracies(stack, test_ids, test_mask, task.eq_id)
    wall_s = wall_before + time.perf_counter() - t_start
    timing = {**watch.totals, "wall_s": wall_s}
    records = []
    for j, spec in enumerate(members):
        info = {"k": K, "member": j, "sweep_id": sweep.sweep_id, "run_ids": sweep.run_ids,
                "wall_s": wall_s,
                "wall_s_rule": "a member's wall_s and its split (setup_s ... io_s) are the "
                               "sweep's divided by k; sweep.wall_s is the whole sweep's"}
        if diverged[j] is not None:
            records.append(_diverged_record(spec, f"the training loss became NaN or infinite "
                                            f"by step {diverged[j]}; the member was frozen",
                                            info))
            continue
        records.append(_record(spec, task, stack, state, j, float(loss_sum[j]), float(loss[j]),
                               test_acc[j], device, {k: v / K for k, v in timing.items()}, info,
                               monitors))
    for record, out in zip(records, outs):
        _atomic_write_json(record, out)
    if run_dir is not None:
        resume_path(run_dir).unlink(missing_ok=True)
    done = [f"{spec.run_id} " + ("diverged" if diverged[j] is not None else
            f"val_loss {records[j]['summary']['val_loss']:.4f} test_acc {test_acc[j]:.3f}")
            for j, spec in enumerate(members)]
    _say(progress, f"done in {wall_s:.1f} s: " + "; ".join(done))
    return records


def _active(diverged: list, device) -> torch.Tensor | None:
    """(K,) bool of the members still training; None when all are (the common, cheaper case)."""
    if all(d is None for d in diverged):
        return None
    return torch.tensor([d is None for d in diverged], device=device)


def _freeze_diverged(loss_sum, step, sweep, diverged, raise_diverged, device, progress):
    """Mark members whose loss sum is no longer finite as diverged at `step`; return _active."""
    for j, finite in enumerate(torch.isfinite(loss_sum).tolist()):
        if not finite and diverged[j] is None:
            if raise_diverged:
                raise DivergedError(f"the training loss became NaN or infinite by step {step}; "
                                    f"the run diverged (try a lower lr); no record written")
            diverged[j] = step
            _say(progress, f"{sweep.run_ids[j]}: loss NaN/inf by step {step}; member frozen")
    return _active(diverged, device)


def _monitors(sweep: SweepSpec, task, streams: dict, device) -> dict:
    """{data seed: ProbeMonitor} when the sweep's runs fit the quiet-feature probes as they train
    (each seed has its own probe split); {} otherwise."""
    if not sweep.first.monitor:
        return {}
    from .monitor import ProbeMonitor
    return {seed: ProbeMonitor(task, stream, device) for seed, stream in streams.items()}


def _observe(monitors: dict, sweep: SweepSpec, stack: Stack, step: int, diverged) -> None:
    for j, spec in enumerate(sweep.members):
        if monitors and diverged[j] is None:
            monitors[spec.seed].on_validation_point(step, stack.member(j), member=j)


def _start(sweep: SweepSpec, run_dir, stack: Stack, optimizer, monitors, save_steps) -> dict:
    """The sweep's state: fresh, or loaded from run_dir's resume checkpoint."""
    K = sweep.k
    state = {"step": 0, "loss_sum": [0.0] * K, "loss_last": [float("nan")] * K,
             "val_curves": [[] for _ in range(K)], "diverged": [None] * K, "timing": {},
             "wall_s": 0.0, "resumed_at": []}
    if run_dir is None:
        return state
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(run_dir).glob("*.tmp*"):  # left by a process killed mid-write
        stale.unlink()
    if resume_path(run_dir).is_file():
        state = _load_resume(resume_path(run_dir), sweep, stack, optimizer, monitors)
        state["resumed_at"].append(state["step"])
    elif 0 in save_steps:
        save_weights(weights_path(run_dir, 0), stack.member(0), sweep.first, 0)
    return state


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[qlf train] {message}", file=sys.stderr, flush=True)


def _resume_state(state: dict, sweep: SweepSpec, stack: Stack, optimizer, monitors) -> dict:
    return {**state, "sweep": sweep.to_dict(), "flat": stack.flat.detach().cpu(),
            "optimizer": {k: v.cpu() if torch.is_tensor(v) else v
                          for k, v in optimizer.state_dict().items()},
            "monitors": {str(seed): m.state_dict() for seed, m in monitors.items()},
            "rng": torch.get_rng_state()}


def _load_resume(path: Path, sweep: SweepSpec, stack: Stack, optimizer, monitors) -> dict:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["sweep"] != sweep.to_dict():
        raise ValueError(f"resume checkpoint {path} belongs to another run spec (sweep members "
                         f"{[m['lr'] for m in saved['sweep']['members']]} ...); delete it or "
                         f"use another run_dir")
    with torch.no_grad():
        stack.flat.copy_(saved["flat"])
    optimizer.load_state_dict(saved["optimizer"])
    for seed, monitor in monitors.items():
        monitor.load_state_dict(saved["monitors"][str(seed)])
    torch.set_rng_state(saved["rng"])
    return {k: saved[k] for k in ("step", "loss_sum", "loss_last", "val_curves", "diverged",
                                  "timing", "wall_s", "resumed_at")}


def _record(spec, task, stack, state, j, loss_sum, loss_last, test_acc, device, timing, info,
            monitors) -> dict:
    model_flops = 3 * forward_flops_per_sequence(stack.cfg, task.seq_len) * spec.train_examples
    curve = state["val_curves"][j]
    summary = {
        "val_loss": curve[-1][1],
        "test_acc": test_acc,
        "train_loss": loss_sum / spec.steps,  # mean over the run (the reference's epoch loss)
        "train_loss_last": loss_last,
        "steps": spec.steps,
        "examples": spec.train_examples,
        "tokens": spec.train_examples * spec.ctx,  # unpadded tokens, as the FLOPs model counts
        "tokens_padded": spec.train_examples * task.seq_len,
        "flops_nominal": spec.budget,
        "flops_actual": spec.flops,  # 6·F·steps·B·ctx (>= the budget by the ceil of steps)
        "flops_model": model_flops,  # matmul FLOPs of this model on the padded sequences
        "n_params": count_parameters(stack.net),
        "val_curve": curve,
        "seed": spec.seed,
        "model_seed": spec.model_seed,
        "precision": spec.precision,
        "device": _device_name(device),
        **timing,  # this member's share of wall_s and its split: setup_s, ..., io_s
        "resumed_at": state["resumed_at"],
        "sweep": info,
        "host": _host(),
        "versions": _versions(),
        "provenance": provenance(),
    }
    if monitors:
        summary["monitor"] = monitors[spec.seed].result(member=j)
    return {"spec": spec.to_dict(), "summary": summary}


def _host() -> dict:
    """Where the run ran: the machine and, under SLURM, the job id."""
    return {"name": platform.node(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def _diverged_record(spec: RunSpec, message: str, info: dict | None = None) -> dict:
    summary = {"val_loss": None, "test_acc": None, "train_loss": None, "steps": spec.steps,
               "flops_nominal": spec.budget, "flops_actual": spec.flops, "diverged": message,
               "host": _host(), "versions": _versions(), "provenance": provenance()}
    if info is not None:
        summary["sweep"] = info
    return {"spec": spec.to_dict(), "summary": summary}


# -- command line --------------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--size", type=int, default=None, help="task size (default: the paper's)")
    p.add_argument("--budget", type=float, required=True, help="training FLOPs, e.g. 1e12")
    p.add_argument("--d-model", type=int, required=True)
    p.add_argument("--n-layers", type=int, required=True)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--lr", type=_float_list, required=True,
                   help="peak learning rate(s), comma-separated: several train as one sweep")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=_int_list, default=[0],
                   help="data seed(s), comma-separated; several put the seed in each run_id")
    p.add_argument("--model-seed", type=int, default=None,
                   help="weight-init seed of a single run (default: derived from the seed and "
                        "the run)")
    p.add_argument("--ctx", type=float, default=None,
                   help="mean example length for the FLOPs model (default: measured)")
    p.add_argument("--precision", choices=PRECISIONS, default="32")
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--n-probe-train", type=int, default=10000)
    p.add_argument("--n-probe-test", type=int, default=1000)
    p.add_argument("--val-points", type=int, default=20)
    p.add_argument("--monitor", action="store_true",
                   help="fit the quiet-feature probes at every validation point (qlf.monitor)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="the JSON record to write (one run)")
    out.add_argument("--out-dir", help="folder for one JSON record per run, DIR/{run_id}.json")
    p.add_argument("--run-dir", default=None, help="folder for resume checkpoints and weights")
    p.add_argument("--save-steps", type=_int_list, default=[],
                   help="comma-separated steps whose weights to save (0 = initial weights)")
    p.add_argument("--save-final", action="store_true", help="save the final weights")
    p.add_argument("--ckpt-every-s", type=float, default=300.0,
                   help="seconds between resume checkpoints (0 = every step)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--graphs-dir", default=None, help="folder of graph{n}c.g6 files")


def train_from_args(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    members = list(itertools.product(args.lr, args.seed))
    if len(members) != len(set(members)):
        raise ValueError(f"--lr {args.lr} and --seed {args.seed} repeat a run")
    if args.out is not None and len(members) > 1:
        raise ValueError(f"--out writes one record; {len(members)} runs (--lr x --seed) need "
                         f"--out-dir")
    if args.model_seed is not None and len(members) > 1:
        raise ValueError("--model-seed sets one run's init; leave it out for a sweep")
    size = args.size if args.size is not None else get_task(args.task).size
    specs = [make_spec(args.task, size, args.budget, args.d_model, args.n_layers, args.n_heads,
                       lr, args.batch_size, seed, ctx=args.ctx, graphs_dir=args.graphs_dir,
                       model_seed=args.model_seed, precision=args.precision, n_val=args.n_val,
                       n_test=args.n_test, n_probe_train=args.n_probe_train,
                       n_probe_test=args.n_probe_test, val_points=args.val_points,
                       name_seed=len(args.seed) > 1, monitor=args.monitor)
             for lr, seed in members]
    options = dict(run_dir=args.run_dir, graphs_dir=args.graphs_dir, save_steps=args.save_steps,
                   save_final=args.save_final, ckpt_every_s=args.ckpt_every_s)
    if args.out is not None:
        try:
            train_run(specs[0], args.out, **options)
        except DivergedError as err:
            print(f"qlf train: {err}", file=sys.stderr)
            return 3
        return 0
    records = train_sweep(specs, [Path(args.out_dir) / f"{s.run_id}.json" for s in specs],
                          **options)
    return 3 if any("diverged" in r["summary"] for r in records) else 0
