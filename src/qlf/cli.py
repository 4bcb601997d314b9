"""The `qlf` command: look at tasks and data, make graph files, plan grids, train one run.

Subcommands import their modules lazily, so `qlf tasks` and `qlf show` never import torch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _layout(text: str):
    from .data import Layout
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(
            f"--layout takes four integers VAL,TEST,PROBE_TRAIN,PROBE_TEST, got {text!r}")
    return Layout(*values)


def cmd_tasks(args) -> int:
    from .tasks import TASKS, get_task
    rows = [("task", "size", "unit", "vocab", "seq_len", "package", "features")]
    for name in TASKS:  # every registered task at its default size, sorted by name
        task = get_task(name, graphs_dir=args.graphs_dir)
        rows.append((name, str(task.size), task.size_unit, str(task.vocab_size),
                     str(task.seq_len), TASKS.package(name),
                     ", ".join(f.name for f in task.features)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _row_value(label, kind: str):
    if kind in ("multilabel", "onehot"):
        return [int(v) for v in label]
    return label.item() if hasattr(label, "item") else label


def example_records(task, examples) -> list[dict]:
    """Examples as plain dicts (the `qlf show --json` format); absent feature rows are dropped."""
    records = []
    for i in range(len(examples)):
        feats = {}
        for name, fl in examples.features.items():
            present = np.flatnonzero(fl.positions[i] >= 0)
            feats[name] = {"positions": [int(p) for p in fl.positions[i, present]],
                           "labels": [_row_value(fl.labels[i, r], fl.kind) for r in present],
                           "kind": fl.kind}
        ids = examples.ids[i]
        records.append({"task": task.name, "size": task.size,
                        "tokens": [task.tokens[t] for t in ids], "ids": [int(t) for t in ids],
                        "loss_mask": [int(m) for m in examples.loss_mask[i]],
                        "key": int(examples.keys[i]), "features": feats})
    return records


def _format_label(value, kind: str) -> str:
    if kind in ("multilabel", "onehot"):
        return "{" + ",".join(str(j) for j, v in enumerate(value) if v) + "}"
    return str(value)


def cmd_show(args) -> int:
    from .data import Stream
    from .tasks import get_task
    task = get_task(args.task, args.size, graphs_dir=args.graphs_dir)
    examples = Stream(task, args.seed, args.layout).examples(args.split, args.start, args.n)
    for k, rec in enumerate(example_records(task, examples)):
        if args.json:
            print(json.dumps(rec))
            continue
        print(f"# {task.name} size {task.size} seed {args.seed} {args.split} "
              f"#{args.start + k} (class {rec['key']})")
        print(task.render(np.array(rec["ids"])))
        for name, f in rec["features"].items():
            cells = " ".join(f"@{p}:{_format_label(v, f['kind'])}"
                             for p, v in zip(f["positions"], f["labels"]))
            print(f"  {name} [{f['kind']}] {cells}")
    return 0


def cmd_graphs(args) -> int:
    from .graphs import graph_file_path, make_graph_file
    out = (Path(args.out) if args.out
           else graph_file_path(args.graphs_dir, args.nodes, args.graph_class))
    # progress lines go to stderr every few seconds; the summary is printed once at the end
    summary = make_graph_file(args.nodes, out, keep=args.keep, seed=args.seed, jobs=args.jobs,
                              graph_class_name=args.graph_class)
    print(json.dumps(summary))
    return 0


def cmd_plan(args) -> int:
    from .compute import plan_table
    print(plan_table(args.config))
    if args.throughput is not None:
        from .throughput import load_table, projection_text
        print()
        print(projection_text(args.config, load_table(args.throughput), args.gpus))
    return 0


def build_parser(with_train: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    graphs_dir = dict(default=Path("resources/graphs"), type=Path,
                      help="folder of graph{n}c.g6 files (default: resources/graphs)")

    p = sub.add_parser("tasks", help="list the registered tasks")
    p.add_argument("--graphs-dir", **graphs_dir)
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("show", help="print examples as the model sees them, with feature labels")
    p.add_argument("task")
    p.add_argument("--size", type=int, default=None, help="task size (default: the paper's)")
    p.add_argument("--n", type=int, default=3, help="number of examples")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--split", default="train",
                   choices=["val", "test", "probe_train", "probe_test", "train"])
    p.add_argument("--start", type=int, default=0, help="index of the first example in the split")
    p.add_argument("--layout", type=_layout, default="1000,1000,10000,1000",
                   help="held-out sizes VAL,TEST,PROBE_TRAIN,PROBE_TEST (default 1000,1000,10000,"
                        "1000); tiny sizes need smaller ones, e.g. 0,0,0,0")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--graphs-dir", **graphs_dir)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("graphs", help="make a uniform sample of one class of graphs with geng")
    p.add_argument("nodes", type=int)
    from .graphs import GRAPH_CLASSES
    p.add_argument("--class", dest="graph_class", default="connected",
                   choices=list(GRAPH_CLASSES),
                   help="which graphs (default connected: graph{n}c.g6; perfect: perfect{n}.g6; "
                        "connected_planar: planar{n}c.g6; connected_eulerian: eulerian{n}c.g6)")
    p.add_argument("--keep", type=float, default=1.0,
                   help="fraction of isomorphism classes kept, by a seeded hash (1 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None, help="parallel geng res/mod classes")
    p.add_argument("--out", default=None,
                   help="output file (default GRAPHS_DIR/ the class's file name)")
    p.add_argument("--graphs-dir", **graphs_dir)
    p.set_defaults(func=cmd_graphs)

    p = sub.add_parser("plan", help="runs and FLOPs per task and budget for a config file")
    p.add_argument("config", type=Path)
    p.add_argument("--throughput", type=Path, default=None,
                   help="a device's throughput CSV (bench/bench_throughput.py): also print the "
                        "projected wall time of the config's training jobs on it")
    p.add_argument("--gpus", type=int, default=1,
                   help="devices (or CPU job slots) the jobs share, for --throughput (default 1)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="one compute-budgeted training run -> a JSON record")
    if with_train:  # importing torch costs seconds: only when the train command runs
        try:
            from .train import add_train_arguments, train_from_args
        except ImportError as err:  # torch or lightning missing
            p.set_defaults(func=lambda a, err=err: _missing_training(err))
        else:
            add_train_arguments(p)
            p.set_defaults(func=train_from_args)
    return parser


def _missing_training(err: Exception) -> int:
    print(f"qlf train needs the training extras (torch, lightning-fabric): {err}\n"
          f"install them with: pip install -e '.[train]' torch==2.13.0", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(with_train=bool(argv) and argv[0] == "train").parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"qlf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
