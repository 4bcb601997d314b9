"""One compute-budgeted training run: a RunSpec in, a JSON record out (pipeline.md §6).

    spec -> task, Stream(task, seed, Layout)  (val, test and a never-repeating training stream)
         -> Transformer (torch.manual_seed(model_seed), PyTorch default init)
         -> exactly spec.steps AdamW steps, one pass, warmup + cosine lr (lr_at), clip 1.0
         -> val loss at ~val_points log-spaced steps on the first val_curve_examples of the
            val split, and at the end on all of it (the scaling-law number)
         -> greedy exact-match accuracy on the test split (KV-cached, batched decoding)
         -> {"spec": ..., "summary": ...} written atomically to out_json

Lightning Fabric picks the device (one CUDA device when present, else the CPU) and precision
("32" -> fp32, "bf16-mixed" -> bf16 autocast, also used for evaluation). The loop is plain
PyTorch so that its per-step overhead stays small (bench/bench_train.py compares Trainer).

With a run_dir the run writes resume checkpoints (model, optimizer, step, loss sums, val curve;
atomically, every ckpt_every_s seconds): the same call after a crash or `kill -9` continues from
the last one and ends with the same numbers (bit-identical on CPU); the record's arrival removes
it.
It also writes weights at `save_steps` (0 = the initial weights) and, with save_final, the final
weights, which `load_model` reads.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .compute import PRECISIONS, RunSpec, make_spec
from .data import Layout, Stream
from .model import (ModelConfig, Transformer, count_parameters, exact_match,
                    forward_flops_per_sequence, greedy_decode, masked_targets, target_loss)
from .tasks import get_task

CHUNK_EXAMPLES = 8192  # training examples generated (and moved to the device) at once
LOSS_TOKENS = 8192  # tokens per validation batch (activations stay in cache on a CPU)
DECODE_TOKENS = 32768  # tokens per decoding batch (fewer, larger one-position steps)
CHECK_EVERY = 32  # steps between checks that the training loss is finite
PROGRESS_EVERY_S = 30.0  # seconds between progress lines on stderr


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

@torch.no_grad()
def evaluate_loss(model: Transformer, ids: torch.Tensor, loss_mask: torch.Tensor) -> float:
    """Mean CE over every scored token of the split (batch-size independent)."""
    targets = masked_targets(ids, loss_mask)
    total, count = 0.0, int((targets >= 0).sum())
    step = max(1, LOSS_TOKENS // ids.shape[1])
    for i in range(0, len(ids), step):
        logits = model(ids[i:i + step])
        total += float(target_loss(logits, targets[i:i + step]) * (targets[i:i + step] >= 0).sum())
    return total / count


@torch.no_grad()
def evaluate_accuracy(model: Transformer, ids: torch.Tensor, loss_mask: torch.Tensor,
                      eq_id: int) -> float:
    """Greedy exact-match rate of the whole answer span ('=', answer, first EOS).

    Rows are decoded in order of their '=' position, so that a batch shares nearly one prompt
    length (graph tasks) and the cached decoding steps one position at a time only briefly.
    """
    eq_pos = (ids == eq_id).int().argmax(1)
    order = torch.argsort(eq_pos, stable=True)
    correct = 0
    step = max(1, DECODE_TOKENS // ids.shape[1])
    for i in range(0, len(ids), step):
        rows = order[i:i + step]
        generated = greedy_decode(model, ids[rows], eq_pos[rows])
        correct += int(exact_match(generated, ids[rows], loss_mask[rows]).sum())
    return correct / len(ids)


# -- the run -------------------------------------------------------------------------------------

def build(spec: RunSpec, task):
    """(fabric, net, model, optimizer): the freshly initialised Transformer `net` of a run and
    its Fabric-wrapped `model` and AdamW optimizer, on Fabric's device."""
    fabric = _fabric(spec.precision)
    torch.manual_seed(spec.model_seed)  # initialise on the CPU: the same weights on any device
    net = Transformer(ModelConfig(vocab_size=task.vocab_size, seq_len=task.seq_len,
                                  d_model=spec.d_model, n_layers=spec.n_layers,
                                  n_heads=spec.n_heads, norm_eps=spec.norm_eps))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr_at(0, spec),
                                  betas=(spec.beta1, spec.beta2), eps=1e-8,
                                  weight_decay=spec.weight_decay, fused=True)
    model, optimizer = fabric.setup(net, optimizer)
    return fabric, net, model, optimizer


def train_step(fabric, model, optimizer, ids, targets, lr: float, grad_clip: float):
    """One optimizer step on one batch; returns the (detached) batch loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    # the Fabric-wrapped model runs its forward under the precision's autocast
    loss = target_loss(model(ids), targets)
    fabric.backward(loss)
    if grad_clip > 0:
        fabric.clip_gradients(model, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _check_request(spec: RunSpec, run_dir, save_steps, save_final, ckpt_every_s) -> list[int]:
    if not isinstance(spec, RunSpec):
        raise ValueError(f"spec must be a qlf.compute.RunSpec, got {type(spec).__name__}")
    steps = sorted({int(s) for s in save_steps})
    bad = [s for s in steps if not 0 <= s <= spec.steps]
    if bad:
        raise ValueError(f"save_steps {bad} outside 0..{spec.steps} (the run's steps)")
    if (steps or save_final) and run_dir is None:
        raise ValueError("save_steps and save_final need a run_dir to write the weights to")
    if not ckpt_every_s >= 0:
        raise ValueError(f"ckpt_every_s must be >= 0 seconds, got {ckpt_every_s}")
    return steps


def _fabric(precision: str):
    """One device (the first GPU, else the CPU), one process: a plain environment, so that a
    SLURM allocation is never mistaken for a multi-process job."""
    from lightning.fabric import Fabric
    from lightning.fabric.plugins.environments import LightningEnvironment
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
    import lightning
    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "qlf": __version__}


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


def train_run(spec: RunSpec, out_json, run_dir=None, graphs_dir=None, save_steps=(),
              save_final: bool = False, ckpt_every_s: float = 300.0,
              progress: bool = True) -> dict:
    """Train one run and write its record to `out_json`; returns the record.

    run_dir: folder for resume checkpoints and saved weights (None: neither). An existing resume
    checkpoint there is continued (it must belong to the same spec).
    save_steps: steps whose weights to keep (0 = initial weights); save_final: the final weights.
    ckpt_every_s: seconds between resume checkpoints (0 = after every step).
    Raises ValueError on a bad request before any work, DivergedError on a NaN/inf loss (no
    record is written then).
    """
    t_start = time.perf_counter()
    save_steps = _check_request(spec, run_dir, save_steps, save_final, ckpt_every_s)
    task = get_task(spec.task, spec.size, graphs_dir=graphs_dir)
    stream = Stream(task, spec.seed, Layout(spec.n_val, spec.n_test, spec.n_probe_train,
                                            spec.n_probe_test))
    if spec.train_examples > stream.n_available("train"):
        raise ValueError(f"{spec.task} size {spec.size}: the run needs {spec.train_examples} "
                         f"training examples, the stream holds {stream.n_available('train')}")
    fabric, net, model, optimizer = build(spec, task)
    device, B = fabric.device, spec.batch_size
    state = _start(spec, run_dir, net, optimizer, save_steps)
    watch = Stopwatch(state["timing"])
    wall_before = state["wall_s"]  # spent by earlier processes of this run
    watch.totals["setup_s"] += time.perf_counter() - t_start

    with watch("data_s"):
        val = stream.examples("val", features=False)
        test = stream.examples("test", features=False)
        val_ids, val_mask = _to_device(val.ids, device), _to_device(val.loss_mask, device)
        test_ids, test_mask = _to_device(test.ids, device), _to_device(test.loss_mask, device)

    val_at = set(val_steps(spec.steps, spec.val_points))
    step = state["step"]
    loss_sum = torch.tensor(state["loss_sum"], dtype=torch.float64, device=device)
    loss = torch.tensor(state["loss_last"], device=device)  # the last step's loss
    last_ckpt = last_print = time.perf_counter()
    _say(progress, f"{spec.task} n{spec.size} {spec.run_id} budget {spec.budget:.3g}: "
                   f"{spec.steps} steps of {B} on {_device_name(device)}"
                   + (f", resuming after step {step}" if step else ""))
    while step < spec.steps:
        with watch("data_s"):  # a chunk of consecutive batches of the training stream
            k = min(max(1, CHUNK_EXAMPLES // B), spec.steps - step)
            chunk = stream.examples("train", step * B, k * B, features=False)
            ids = _to_device(chunk.ids, device)
            targets = masked_targets(ids, _to_device(chunk.loss_mask, device))
        for i in range(k):
            with watch("train_s"):
                loss = train_step(fabric, model, optimizer, ids[i * B:(i + 1) * B],
                                  targets[i * B:(i + 1) * B], lr_at(step, spec), spec.grad_clip)
                loss_sum += loss
                step += 1
                if step % CHECK_EVERY == 0 or step in val_at or step == spec.steps:
                    _check_finite(loss_sum, step)
            if step in val_at:  # the curve on a subset; the final point on the whole split
                k = len(val_ids) if step == spec.steps else spec.val_curve_examples
                with watch("eval_s"), fabric.autocast():
                    state["val_curve"].append([step, evaluate_loss(net, val_ids[:k],
                                                                   val_mask[:k])])
            if run_dir is not None:
                with watch("io_s"):
                    if step in save_steps:
                        save_weights(weights_path(run_dir, step), net, spec, step)
                    if step == spec.steps and save_final:
                        save_weights(final_weights_path(run_dir), net, spec, step)
                    if time.perf_counter() - last_ckpt >= ckpt_every_s:
                        _check_finite(loss_sum, step)
                        state.update(step=step, loss_sum=float(loss_sum), loss_last=float(loss),
                                     timing=dict(watch.totals),
                                     wall_s=wall_before + time.perf_counter() - t_start)
                        _atomic_save(_resume_state(state, spec, net, optimizer),
                                     resume_path(run_dir))
                        last_ckpt = time.perf_counter()
            if progress and time.perf_counter() - last_print >= PROGRESS_EVERY_S:
                last_print = time.perf_counter()
                _say(True, f"step {step}/{spec.steps} loss {float(loss):.4f} "
                           f"lr {lr_at(step - 1, spec):.3g} "
                           f"({step * B / max(watch.totals['train_s'], 1e-9):.0f} examples/s)")

    with watch("eval_s"), fabric.autocast():
        test_acc = evaluate_accuracy(net, test_ids, test_mask, task.eq_id)
    wall_s = wall_before + time.perf_counter() - t_start
    record = _record(spec, task, net, state, float(loss_sum), float(loss), test_acc, device,
                     {**watch.totals, "wall_s": wall_s})
    _atomic_write_json(record, Path(out_json))
    if run_dir is not None:
        resume_path(run_dir).unlink(missing_ok=True)
    _say(progress, f"done: val_loss {record['summary']['val_loss']:.4f} test_acc {test_acc:.3f} "
                   f"in {wall_s:.1f} s -> {out_json}")
    return record


def _start(spec: RunSpec, run_dir, net, optimizer, save_steps) -> dict:
    """The run's state: fresh, or loaded from run_dir's resume checkpoint."""
    state = {"step": 0, "loss_sum": 0.0, "loss_last": float("nan"), "val_curve": [],
             "timing": {}, "wall_s": 0.0, "resumed_at": []}
    if run_dir is None:
        return state
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(run_dir).glob("*.tmp*"):  # left by a process killed mid-write
        stale.unlink()
    if resume_path(run_dir).is_file():
        state = _load_resume(resume_path(run_dir), spec, net, optimizer)
        state["resumed_at"].append(state["step"])
    elif 0 in save_steps:
        save_weights(weights_path(run_dir, 0), net, spec, 0)
    return state


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[qlf train] {message}", file=sys.stderr, flush=True)


def _check_finite(loss_sum: torch.Tensor, step: int) -> None:
    if not math.isfinite(float(loss_sum)):
        raise DivergedError(f"the training loss became NaN or infinite by step {step}; the run "
                            f"diverged (try a lower lr); no record written")


def _resume_state(state: dict, spec: RunSpec, net, optimizer) -> dict:
    return {**state, "spec": spec.to_dict(), "model": net.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}


def _load_resume(path: Path, spec: RunSpec, net, optimizer) -> dict:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["spec"] != spec.to_dict():
        raise ValueError(f"resume checkpoint {path} belongs to another run spec; delete it or "
                         f"use another run_dir")
    net.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return {k: saved[k] for k in ("step", "loss_sum", "loss_last", "val_curve", "timing",
                                  "wall_s", "resumed_at")}


def _record(spec, task, net, state, loss_sum, loss_last, test_acc, device, timing) -> dict:
    model_flops = 3 * forward_flops_per_sequence(net.cfg, task.seq_len) * spec.train_examples
    summary = {
        "val_loss": state["val_curve"][-1][1],
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
        "n_params": count_parameters(net),
        "val_curve": state["val_curve"],
        "seed": spec.seed,
        "model_seed": spec.model_seed,
        "precision": spec.precision,
        "device": _device_name(device),
        **timing,  # wall_s and its split: setup_s, data_s, train_s, eval_s, io_s
        "resumed_at": state["resumed_at"],
        "host": _host(),
        "versions": _versions(),
    }
    return {"spec": spec.to_dict(), "summary": summary}


def _host() -> dict:
    """Where the run ran: the machine and, under SLURM, the job id."""
    return {"name": platform.node(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def write_diverged_record(spec: RunSpec, out_json, error: DivergedError) -> dict:
    """A grid run whose loss went NaN is a result, not a crash: the pipeline writes this record
    (metrics null, `diverged` set) so the frontier sees the cell and skips the run. `qlf train`
    itself keeps raising and writes nothing."""
    record = {"spec": spec.to_dict(),
              "summary": {"val_loss": None, "test_acc": None, "train_loss": None,
                          "steps": spec.steps, "flops_nominal": spec.budget,
                          "flops_actual": spec.flops, "diverged": str(error), "host": _host(),
                          "versions": _versions()}}
    _atomic_write_json(record, Path(out_json))
    return record


# -- command line --------------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--size", type=int, default=None, help="task size (default: the paper's)")
    p.add_argument("--budget", type=float, required=True, help="training FLOPs, e.g. 1e12")
    p.add_argument("--d-model", type=int, required=True)
    p.add_argument("--n-layers", type=int, required=True)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--lr", type=float, required=True, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--model-seed", type=int, default=None,
                   help="weight-init seed (default: derived from the seed and the run)")
    p.add_argument("--ctx", type=float, default=None,
                   help="mean example length for the FLOPs model (default: measured)")
    p.add_argument("--precision", choices=PRECISIONS, default="32")
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--n-probe-train", type=int, default=10000)
    p.add_argument("--n-probe-test", type=int, default=1000)
    p.add_argument("--val-points", type=int, default=20)
    p.add_argument("--out", required=True, help="the JSON record to write")
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
    size = args.size if args.size is not None else get_task(args.task).size
    spec = make_spec(args.task, size, args.budget, args.d_model, args.n_layers, args.n_heads,
                     args.lr, args.batch_size, args.seed, ctx=args.ctx,
                     graphs_dir=args.graphs_dir, model_seed=args.model_seed,
                     precision=args.precision, n_val=args.n_val, n_test=args.n_test,
                     n_probe_train=args.n_probe_train, n_probe_test=args.n_probe_test,
                     val_points=args.val_points)
    try:
        train_run(spec, args.out, run_dir=args.run_dir, graphs_dir=args.graphs_dir,
                  save_steps=args.save_steps, save_final=args.save_final,
                  ckpt_every_s=args.ckpt_every_s)
    except DivergedError as err:
        print(f"qlf train: {err}", file=sys.stderr)
        return 3
    return 0
