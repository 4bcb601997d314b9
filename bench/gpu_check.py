"""GPU check (a few minutes on one CUDA device): KV-cached decoding against full recomputation,
training throughput in fp32 and bf16-mixed (ms/step, tokens/s, MFU against the matmul peak of
that precision, measured here), and one whole run per precision with its final losses.

    python bench/gpu_check.py [--out DIR] [--budget 1e13] [--d-model 128] [--n-layers 4]

Exits with status 2 and a message when no CUDA device is present.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from qlf.compute import flops_per_token, make_spec
from qlf.data import Stream
from qlf.model import ModelConfig, Transformer, greedy_decode, masked_targets
from qlf.tasks import get_task
from qlf.sweep import SweepSpec
from qlf.train import build, train_run, train_step

TASK, SIZE, BATCH, CTX = "addition", 16, 64, 52.0
SHAPES = [(64, 4), (256, 4), (512, 16)]


def matmul_peak(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ a
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def decode_check() -> bool:
    """Cached greedy decoding equals full recomputation on this device (unequal prompts)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(7, 24, 64, 2, 4)).cuda()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(3.0)  # a context-dependent random model
    ids = torch.randint(0, 7, (16, 24), device="cuda")
    eq = torch.randint(4, 20, (16,), device="cuda")
    cached = greedy_decode(model, ids, eq)
    naive = ids.clone()
    with torch.no_grad():
        for pos in range(int(eq.min()), 24):
            guess = model(naive[:, :pos])[:, -1].argmax(-1)
            naive[:, pos] = torch.where(pos < eq, ids[:, pos], guess)
    return bool(torch.equal(cached, naive))


def step_times(d: int, layers: int, precision: str, warmup: int = 10, timed: int = 40):
    spec = make_spec(TASK, SIZE, 1e12, d, layers, 4, 1e-3, BATCH, ctx=CTX, precision=precision,
                     max_steps_cap=10**12)  # only the shape matters here
    task = get_task(TASK, SIZE)
    ex = Stream(task, 0).examples("train", 0, (warmup + timed) * BATCH, features=False)
    fabric, stack, optimizer = build(SweepSpec((spec,)), task)
    lr = torch.tensor([1e-3], device=fabric.device)
    ids = torch.from_numpy(ex.ids).to(fabric.device).long()
    targets = masked_targets(ids, torch.from_numpy(ex.loss_mask).to(fabric.device))
    times = []
    for i in range(warmup + timed):
        torch.cuda.synchronize()
        t = time.perf_counter()
        train_step(fabric, stack, optimizer, ids[i * BATCH:(i + 1) * BATCH],
                   targets[i * BATCH:(i + 1) * BATCH], lr)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the run records")
    parser.add_argument("--budget", type=float, default=1e13)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-layers", type=int, default=4)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it "
              "on a machine with a GPU and a CUDA build of torch", file=sys.stderr)
        return 2
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    print(f"cached decode == full recompute: {decode_check()}", flush=True)
    peaks = {"32": matmul_peak(torch.float32), "bf16-mixed": matmul_peak(torch.bfloat16)}
    print("matmul peak: " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))

    print(f"\n{'d_model':>7} {'layers':>6} {'precision':>10} {'ms/step':>8} {'tokens/s':>10} "
          f"{'MFU':>6}")
    for d, layers in SHAPES:
        for precision in ("32", "bf16-mixed"):
            step = step_times(d, layers, precision)
            tokens = BATCH * CTX / step
            mfu = tokens * 6 * flops_per_token(d, layers, CTX) / peaks[precision]
            print(f"{d:>7} {layers:>6} {precision:>10} {step * 1e3:>8.2f} {tokens:>10.0f} "
                  f"{mfu:>6.1%}", flush=True)

    print(f"\n# whole runs: {TASK}-{SIZE}, budget {args.budget:.0e}, d_model {args.d_model}, "
          f"{args.n_layers} layers, lr 1e-3, batch {BATCH}")
    print(f"{'precision':>10} {'steps':>6} {'wall_s':>7} {'train_s':>8} {'eval_s':>7} "
          f"{'val_loss':>9} {'train_loss':>10} {'test_acc':>8}")
    out = args.out or Path("gpu_check_records")
    out.mkdir(parents=True, exist_ok=True)
    for precision in ("32", "bf16-mixed"):
        spec = make_spec(TASK, SIZE, args.budget, args.d_model, args.n_layers, 4, 1e-3, BATCH,
                         ctx=CTX, precision=precision)
        s = train_run(spec, out / f"run_{precision}.json", progress=False)["summary"]
        print(f"{precision:>10} {s['steps']:>6} {s['wall_s']:>7.1f} {s['train_s']:>8.1f} "
              f"{s['eval_s']:>7.1f} {s['val_loss']:>9.4f} {s['train_loss_last']:>10.4f} "
              f"{s['test_acc']:>8.3f}", flush=True)
    print(json.dumps({"records": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
