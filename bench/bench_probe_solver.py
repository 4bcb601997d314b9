"""Offline probes, scikit-learn vs the batched torch solver (qlf.probes solver="sklearn" |
"torch"), on one addition model: n16, d64, 4 layers, 10,000 probe-train and 1,000 probe-test
examples, every feature (2 features x 16 rows x 4 layers = 128 probes).

    python bench/bench_probe_solver.py [--weights /tmp/rdir/weights_final.pt] [--threads 1]

Without --weights the model is a seeded random initialisation. The activations are captured
once (qlf.probes.iter_activations, timed on its own); then the fitting alone is timed: sklearn
probe by probe (fit_probe, BLAS on one thread, as the pipeline runs it), torch as one batched
call per feature (fit_probes_torch, float64, `--threads` torch threads), alternating the two
`--reps` times and keeping each one's fastest (this machine is shared). Agreement is the test
log loss of the same probe under both solvers: max |difference|, the probes within 0.01 nats or
5% of sklearn's, and those outside with the objective both minimise (lower: nearer the optimum)
and whether sklearn's L-BFGS reported convergence.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from qlf.data import Layout, Stream
from qlf.model import ModelConfig, Transformer
from qlf.probes import _Skip, fit_probe, fit_probes_torch, iter_activations
from qlf.tasks import get_task
from qlf.train import load_model

C = 100.0


def fit_all(solver: str, items: list) -> list:
    if solver == "torch":
        return fit_probes_torch([args for _, args in items], C, 100)
    out = []
    for _, args in items:
        try:
            out.append(fit_probe(*args, C, 1000))
        except _Skip as skip:
            out.append(skip)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task("addition", 16)
    if args.weights:
        model = load_model(args.weights)
    else:
        torch.manual_seed(0)
        model = Transformer(ModelConfig(task.vocab_size, task.seq_len, 64, 4, 4))
    stream = Stream(task, 0, Layout(1000, 1000, 10000, 1000))
    tr, te = stream.examples("probe_train"), stream.examples("probe_test")
    features = [f.name for f in task.features]
    started = time.perf_counter()
    items = {f: [] for f in features}  # per feature: ((layer, row), fit_probe's arguments)
    for ps in iter_activations(model, {"probe_train": tr, "probe_test": te}, features):
        for f in ps.features:
            for layer in ps.layers:
                for r in range(tr.features[f].positions.shape[1]):
                    (i_tr, X_tr), (i_te, X_te) = (ps.vectors(s, f, layer, r)
                                                  for s in ("probe_train", "probe_test"))
                    items[f].append(((layer, r), (X_tr, tr.features[f].labels[i_tr, r], X_te,
                                                  te.features[f].labels[i_te, r],
                                                  task.feature(f).kind)))
    capture = time.perf_counter() - started
    seconds = {"sklearn": [], "torch": []}
    fits = {}
    for _ in range(args.reps):
        for solver in seconds:
            started = time.perf_counter()
            fits[solver] = {(f, *key): fit for f in features
                            for (key, _), fit in zip(items[f], fit_all(solver, items[f]))}
            seconds[solver].append(time.perf_counter() - started)
    rows = []
    for key in fits["sklearn"]:
        sk, pt = fits["sklearn"][key], fits["torch"][key]
        if isinstance(sk, _Skip):
            continue
        n_train = len(items[key[0]][0][1][0])
        rows.append(dict(feature=key[0], layer=key[1], row=key[2], test_loss_sk=sk["test_loss"],
                         test_loss_pt=pt["test_loss"], converged_sk=sk["converged"],
                         converged_pt=pt["converged"], n_iter_sk=sk["n_iter"],
                         n_iter_pt=pt["n_iter"],
                         **{f"objective_{t}": f["train_loss"] + float(
                             (np.asarray(f["W"], float) ** 2).sum()) / (2 * C * n_train)
                            for t, f in (("sk", sk), ("pt", pt))}))
    df = pd.DataFrame(rows)
    n = len(df)
    diff = (df.test_loss_pt - df.test_loss_sk).abs()
    ok = diff <= np.maximum(0.01, 0.05 * df.test_loss_sk.abs())
    print(f"addition n16 d64 L4 ({'trained: ' + args.weights if args.weights else 'random init'})"
          f", {len(tr)} / {len(te)} probe examples, {n} probes; torch threads "
          f"{torch.get_num_threads()}, sklearn BLAS threads 1; activation capture "
          f"{capture:.1f} s (shared, not in the times below)")
    print()
    header = (f"{'solver':>8} {'fit_s':>8} {'s/probe':>8} {'speed-up':>8} {'iters (max)':>11} "
              f"{'not conv.':>9}")
    print(header)
    print("-" * len(header))
    best = {s: min(v) for s, v in seconds.items()}
    for solver, tag in (("sklearn", "sk"), ("torch", "pt")):
        print(f"{solver:>8} {best[solver]:8.1f} {best[solver] / n:8.3f} "
              f"{best['sklearn'] / best[solver]:7.1f}x {int(df[f'n_iter_{tag}'].max()):>11} "
              f"{int((~df[f'converged_{tag}']).sum()):>9}")
    print(f"(all timings: sklearn {[round(s, 1) for s in seconds['sklearn']]}, torch "
          f"{[round(s, 1) for s in seconds['torch']]})")
    print()
    print(f"test log loss, torch vs sklearn: max |diff| {diff.max():.4g} nats, mean "
          f"{diff.mean():.3g}; {int(ok.sum())}/{n} within 0.01 nats or 5%")
    out = df[~ok.to_numpy()]
    if len(out):
        print(f"outside the tolerance ({len(out)}); torch's objective is the lower in "
              f"{int((out.objective_pt < out.objective_sk).sum())} of them:")
        print(out[["feature", "layer", "row", "test_loss_sk", "test_loss_pt", "objective_sk",
                   "objective_pt", "converged_sk"]].to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
