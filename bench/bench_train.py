"""Training speed on this machine: per-step time, tokens/s and MFU, Fabric vs Trainer, and the
end-to-end wall time of whole `qlf train` runs.

    python bench/bench_train.py [--threads 1] [--skip-large] [--no-trainer] [--no-e2e]

Addition with 16-bit operands (52 tokens per example), batch 64, one process. MFU = tokens/s x
6·F / (fp32 matmul peak measured here with the same threads), with the paper's F = 12·L·d² +
L·ctx·d (the model's exact matmul count differs by < 1%). ms/step is the median of timed steps
after warm-up steps, measured through qlf.train.train_step (the loop of a sweep of one).
Whole runs: total_s = the `qlf train` process; startup = before train_run (torch import, ctx);
setup_s = train_run's set-up (Lightning import, model); then data, train and eval seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from qlf.compute import flops_per_token, make_spec
from qlf.data import Stream
from qlf.model import masked_targets, target_loss
from qlf.tasks import get_task
from qlf.sweep import SweepSpec
from qlf.train import build, train_step

TASK, SIZE, BATCH, CTX = "addition", 16, 64, 52.0
SHAPES = [(16, 4), (64, 4), (256, 4), (512, 16)]


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n matmul."""
    a = torch.randn(n, n)
    a @ a
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _batches(count: int, batch: int):
    task = get_task(TASK, SIZE)
    ex = Stream(task, 0).examples("train", 0, count * batch, features=False)
    ids = torch.from_numpy(ex.ids).long()
    targets = masked_targets(ids, torch.from_numpy(ex.loss_mask))
    return task, [(ids[i * batch:(i + 1) * batch], targets[i * batch:(i + 1) * batch])
                  for i in range(count)]


def _spec(d: int, layers: int, batch: int):
    return make_spec(TASK, SIZE, 1e12, d, layers, 4, 1e-3, batch, ctx=CTX,
                     max_steps_cap=10**12)  # only the shape matters here


def raw_step_times(d: int, layers: int, batch: int, warmup: int, timed: int) -> list[float]:
    """The same step in plain PyTorch (no Lightning), for the framework's overhead."""
    task, batches = _batches(warmup + timed, batch)
    net = build(SweepSpec((_spec(d, layers, batch),)), task)[1].member(0).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.95),
                                  weight_decay=0.1, fused=True)
    times = []
    for i, (ids, targets) in enumerate(batches):
        t = time.perf_counter()
        loss = target_loss(net(ids), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def fabric_step_times(d: int, layers: int, batch: int, warmup: int, timed: int) -> list[float]:
    spec = _spec(d, layers, batch)
    task, batches = _batches(warmup + timed, batch)
    fabric, stack, optimizer = build(SweepSpec((spec,)), task)
    lr = torch.tensor([1e-3])
    times = []
    for i, (ids, targets) in enumerate(batches):
        t = time.perf_counter()
        float(train_step(fabric, stack, optimizer, ids, targets, lr)[0])
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def trainer_step_times(d: int, layers: int, batch: int, warmup: int, timed: int) -> list[float]:
    """The same step through lightning.Trainer (automatic optimisation, gradient clipping)."""
    import logging
    import warnings

    try:  # the Trainer is in the `lightning` package; qlf itself needs only lightning-fabric
        import lightning as L
    except ImportError as err:
        raise SystemExit(f"the Trainer comparison needs `pip install lightning` ({err}); "
                         f"or pass --no-trainer") from err
    from lightning.fabric.plugins.environments import LightningEnvironment
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")  # srun hints, deprecations

    task, batches = _batches(warmup + timed, batch)
    net = build(SweepSpec((_spec(d, layers, batch),)), task)[1].member(0).train()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, index):
            return target_loss(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3, betas=(0.9, 0.95),
                                     weight_decay=0.1, fused=True)

    class Clock(L.Callback):
        def __init__(self):
            self.stamps = []

        def on_train_batch_start(self, *args):
            self.stamps.append(time.perf_counter())

        def on_train_end(self, *args):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    trainer = L.Trainer(max_steps=len(batches), accelerator="auto", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0, callbacks=[clock],
                        num_sanity_val_steps=0, limit_val_batches=0,
                        plugins=[LightningEnvironment()])
    loader = torch.utils.data.DataLoader(batches, batch_size=None)  # the batches as they are
    trainer.fit(Module(), train_dataloaders=loader)
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    return gaps[warmup:]


def end_to_end(budget: float, threads: int) -> dict:
    """Wall time of `qlf train` in a fresh process (imports included) and the record's split."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "qlf.cli", "train", "--task", TASK, "--size", str(SIZE),
               "--budget", repr(budget), "--d-model", "64", "--n-layers", "4", "--n-heads", "4",
               "--lr", "1e-3", "--batch-size", str(BATCH), "--threads", str(threads),
               "--out", str(out)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        total = time.perf_counter() - t
        summary = json.loads(out.read_text())["summary"]
    return {"total": total, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-large", action="store_true", help="skip d=512, L=16")
    parser.add_argument("--no-trainer", action="store_true")
    parser.add_argument("--no-e2e", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"# {TASK}-{SIZE}, batch {BATCH}, {args.threads} thread(s), torch "
          f"{torch.__version__}; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'d_model':>7} {'layers':>6} {'loop':>7} {'ms/step':>9} {'tokens/s':>10} {'MFU':>6}")
    for d, layers in SHAPES:
        if args.skip_large and d >= 512:
            continue
        warmup, timed = (1, 2) if d >= 512 else (5, 30 if d <= 64 else 8)
        loops = [("fabric", fabric_step_times)]
        if not args.no_trainer and d <= 64:
            loops.append(("trainer", trainer_step_times))
        for name, fn in loops:
            step = statistics.median(fn(d, layers, BATCH, warmup, timed))
            tokens = BATCH * CTX / step
            mfu = tokens * 6 * flops_per_token(d, layers, CTX) / peak
            print(f"{d:>7} {layers:>6} {name:>7} {step * 1e3:>9.2f} {tokens:>10.0f} {mfu:>6.1%}",
                  flush=True)
    print(f"\n# framework overhead: d_model 8, 1 layer, batch 2 (a step that is almost all "
          f"per-op overhead)")
    for name, fn in (("torch", raw_step_times), ("fabric", fabric_step_times),
                     ("trainer", trainer_step_times)):
        if name == "trainer" and args.no_trainer:
            continue
        print(f"{name:>8} {statistics.median(fn(8, 1, 2, 20, 200)) * 1e3:>7.3f} ms/step",
              flush=True)
    if not args.no_e2e:
        print(f"\n# whole runs: qlf train, d_model 64, 4 layers, lr 1e-3, batch {BATCH}")
        print(f"{'budget':>7} {'steps':>6} {'total_s':>8} {'startup':>8} {'setup_s':>8} "
              f"{'data_s':>7} {'train_s':>8} {'eval_s':>7} {'val_loss':>9} {'test_acc':>8}")
        for budget in (1e10, 1e12):
            r = end_to_end(budget, args.threads)
            print(f"{budget:>7.0e} {r['steps']:>6} {r['total']:>8.2f} "
                  f"{r['total'] - r['wall_s']:>8.2f} {r['setup_s']:>8.2f} {r['data_s']:>7.2f} "
                  f"{r['train_s']:>8.2f} "
                  f"{r['eval_s']:>7.2f} {r['val_loss']:>9.4f} {r['test_acc']:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
