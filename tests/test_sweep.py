"""Sweeps: K runs of one shape trained as one stacked model. The stacked layers equal the plain
ones, the stacked AdamW equals torch's, a member's record equals the same run trained alone, a
diverged member leaves the others untouched, a killed sweep resumes to the same numbers, kept
records are reused when a sweep grows, and the config, plan and command line build sweeps."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import qlf.train as train
from qlf.compute import RunSpec, flops_actual, make_spec, validate_config
from qlf.model import ModelConfig, Transformer
from qlf.sweep import SweepSpec, group_sweeps, plan_sweeps
from qlf.train import Stack, StackedAdamW, resume_path, train_run, train_sweep

# A tiny sweep: addition of 6-bit operands, d 32, 2 layers, 40 steps of 32 (as tests/test_train).
TINY = dict(task="addition", size=6, d_model=32, n_layers=2, n_heads=4, batch_size=32,
            ctx=20.0, n_val=128, n_test=128, n_probe_train=0, n_probe_test=0, val_points=5)
STEPS = 40
COMPARED = ("val_loss", "test_acc", "train_loss", "train_loss_last", "steps", "examples",
            "tokens", "tokens_padded", "flops_nominal", "flops_actual", "flops_model",
            "n_params", "val_curve", "seed", "model_seed", "diverged")


def tiny(lr=3e-3, seed=0, **changes) -> RunSpec:
    args = {**TINY, **changes}
    budget = 0.999 * flops_actual(STEPS, args["batch_size"], args["ctx"], args["d_model"],
                                  args["n_layers"])
    return make_spec(budget=budget, lr=lr, seed=seed, **args)


def numbers(record: dict) -> dict:
    return {k: record["summary"].get(k) for k in COMPARED}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the stacked model -------------------------------------------------------------------------

def test_a_stack_computes_what_each_member_computes_alone():
    cfg = ModelConfig(vocab_size=7, seq_len=12, d_model=16, n_layers=2, n_heads=4)
    nets = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        nets.append(Transformer(cfg))
    ids = torch.randint(0, 7, (3 * 5, 12))
    stack = Stack(nets, "cpu")
    stacked = stack(ids)
    for k, net in enumerate(nets):
        alone = net(ids[5 * k:5 * (k + 1)])
        torch.testing.assert_close(stacked[5 * k:5 * (k + 1)], alone, rtol=1e-5, atol=1e-5)
        member = stack.member(k)  # a plain Transformer again, with member k's weights
        assert all(torch.equal(member.state_dict()[n], p) for n, p in net.state_dict().items())
    one = Stack([nets[1]], "cpu")  # a stack of one runs the plain layers: bit-identical
    assert torch.equal(one(ids[:5]), nets[1](ids[:5]))
    with pytest.raises(ValueError, match="does not split"):
        stack(ids[:7])


def test_stacked_adamw_is_torch_adamw_per_member_with_its_own_lr_and_clip():
    cfg = ModelConfig(vocab_size=5, seq_len=8, d_model=8, n_layers=1, n_heads=2)
    lrs, clip = [3e-2, 1e-3], 0.05  # a small clip: both members are clipped, each by its own norm
    nets, refs, opts = [], [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(Transformer(cfg))
        torch.manual_seed(seed)
        refs.append(Transformer(cfg))
        opts.append(torch.optim.AdamW(refs[-1].parameters(), lr=lrs[seed], betas=(0.9, 0.95),
                                      eps=1e-8, weight_decay=0.1))
    stack = Stack(nets, "cpu")
    optimizer = StackedAdamW(stack.flat, (0.9, 0.95), 1e-8, 0.1, clip)
    torch.manual_seed(5)
    for _ in range(4):
        ids = torch.randint(0, 5, (2 * 3, 8))
        targets = ids[:, 1:]
        train.member_losses(stack(ids), targets, 2).sum().backward()
        optimizer.step(torch.tensor(lrs))
        for k, (ref, opt) in enumerate(zip(refs, opts)):
            train.member_losses(ref(ids[3 * k:3 * (k + 1)]), targets[3 * k:3 * (k + 1)],
                                1).sum().backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)
            opt.step()
            opt.zero_grad()
    for k, ref in enumerate(refs):
        for name, p in stack.member(k).state_dict().items():
            torch.testing.assert_close(p, ref.state_dict()[name], rtol=1e-5, atol=1e-6)


# -- members are independent -------------------------------------------------------------------

@pytest.mark.parametrize("exp", [10, 11])
def test_members_equal_the_same_runs_trained_alone(exp, tmp_path):
    """addition d64 L4, K = 4 (two lrs x two data seeds). Not bit-identical: the stack's batched
    matmul (bmm over members) sums in another order than a single run's plain matmul, so the
    numbers agree to float rounding, amplified over the steps: 1e-5 relative."""
    specs = [make_spec("addition", 16, 10.0 ** exp, 64, 4, 4, lr, 64, seed, n_val=256,
                       n_test=64, name_seed=True) for lr in (1e-2, 1e-3) for seed in (0, 1)]
    assert len({s.seed for s in specs}) == 2 and len({s.model_seed for s in specs}) == 4
    fused = train_sweep(specs, [tmp_path / f"{s.run_id}.json" for s in specs], progress=False)
    for spec, record in zip(specs, fused):
        alone = train_run(spec, tmp_path / "alone.json", progress=False)["summary"]
        member = record["summary"]
        for key in ("steps", "examples", "tokens", "tokens_padded", "flops_actual",
                    "flops_model", "n_params", "model_seed", "seed"):
            assert member[key] == alone[key], key
        assert [s for s, _ in member["val_curve"]] == [s for s, _ in alone["val_curve"]]
        for key in ("val_loss", "train_loss", "train_loss_last"):
            assert member[key] == pytest.approx(alone[key], rel=1e-5), key
        assert member["sweep"]["k"] == 4 and member["sweep"]["run_ids"] == [s.run_id for s in specs]
        assert member["wall_s"] == pytest.approx(member["sweep"]["wall_s"] / 4)


def test_a_diverged_member_is_frozen_and_the_others_keep_their_numbers(tmp_path, monkeypatch):
    specs = [tiny(lr) for lr in (3e-3, 1e-2, 1e-3)]
    clean = train_sweep(specs, [tmp_path / f"clean{i}.json" for i in range(3)], progress=False)
    steps = []
    original = train.member_losses

    def member_1_nan_from_step_5(logits, targets, k, reduce=True):
        out = original(logits, targets, k, reduce)
        if reduce:  # a training step (validation sums instead)
            steps.append(1)
            if len(steps) >= 5:
                out = out * torch.tensor([1.0, float("nan"), 1.0])
        return out

    monkeypatch.setattr(train, "member_losses", member_1_nan_from_step_5)
    outs = [tmp_path / f"nan{i}.json" for i in range(3)]
    hit = train_sweep(specs, outs, progress=False)
    assert "NaN or infinite by step" in hit[1]["summary"]["diverged"]
    assert hit[1]["summary"]["val_loss"] is None and hit[1]["summary"]["sweep"]["member"] == 1
    assert json.loads(outs[1].read_text()) == hit[1]
    for i in (0, 2):  # exactly, not approximately: no operation mixes members
        assert numbers(hit[i]) == numbers(clean[i])


def test_a_single_run_that_diverges_raises_and_writes_nothing(tmp_path, monkeypatch):
    original = train.member_losses
    monkeypatch.setattr(train, "member_losses",
                        lambda logits, targets, k, reduce=True: original(logits, targets, k, reduce)
                        * (float("nan") if reduce else 1.0))
    with pytest.raises(train.DivergedError):
        train_run(tiny(), tmp_path / "run.json", progress=False)
    assert not (tmp_path / "run.json").exists()


# -- resume and reuse --------------------------------------------------------------------------

def test_kill_9_of_a_sweep_then_the_same_call_resumes_to_identical_records(tmp_path):
    specs = [tiny(lr) for lr in (3e-3, 1e-2)]
    reference = train_sweep(specs, [tmp_path / f"ref{i}.json" for i in range(2)], progress=False)
    (tmp_path / "sweep.json").write_text(json.dumps(SweepSpec(tuple(specs)).to_dict()))
    outs, run_dir = [tmp_path / f"run{i}.json" for i in range(2)], tmp_path / "ckpt"
    code = ("import json, sys, torch; torch.set_num_threads(1)\n"
            "from qlf.sweep import SweepSpec; from qlf.train import train_sweep\n"
            "sweep = SweepSpec.from_dict(json.load(open(sys.argv[1])))\n"
            "train_sweep(sweep, sys.argv[2:4], run_dir=sys.argv[4], ckpt_every_s=0, "
            "progress=False)\n")
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "sweep.json"),
                                 *map(str, outs), str(run_dir)], stderr=err)
    deadline = time.monotonic() + 180
    while not resume_path(run_dir).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sweep never checkpointed:\n{(tmp_path / 'stderr.txt').read_text()}")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not any(o.exists() for o in outs), "the sweep finished before the kill"
    killed_at = torch.load(resume_path(run_dir), weights_only=True)["step"]
    resumed = train_sweep(specs, outs, run_dir=run_dir, ckpt_every_s=0, progress=False)
    for got, want in zip(resumed, reference):
        assert got["summary"]["resumed_at"] == [killed_at]
        assert numbers(got) == numbers(want)  # bit-identical on the CPU
    assert not resume_path(run_dir).exists()


def test_growing_a_sweep_trains_only_its_new_member(tmp_path):
    keep = tmp_path / "kept"
    a, b, c = tiny(3e-3), tiny(1e-2), tiny(1e-3)
    first = train_sweep([a, b], [tmp_path / "a.json", tmp_path / "b.json"], keep_dir=keep,
                        progress=False)
    assert sorted(p.name for p in keep.iterdir()) == sorted([f"{a.run_id}.json",
                                                             f"{b.run_id}.json"])
    grown = train_sweep([a, b, c], [tmp_path / f"{x}2.json" for x in "abc"], keep_dir=keep,
                        progress=False)
    assert grown[:2] == first  # reused whole, wall times included: not trained again
    assert grown[2]["summary"]["sweep"]["run_ids"] == [c.run_id]  # trained alone
    assert json.loads((tmp_path / "a2.json").read_text()) == first[0]
    changed = tiny(3e-3, val_points=4)  # another spec under the same run_id: trained again
    assert changed.run_id == a.run_id
    again = train_sweep([changed], [tmp_path / "a3.json"], keep_dir=keep, progress=False)
    assert again[0]["spec"] == changed.to_dict() and again[0] != first[0]


# -- specs, plans, config, command line --------------------------------------------------------

def test_sweep_specs_hold_runs_that_differ_only_in_what_they_fuse():
    a, b = tiny(3e-3), tiny(1e-2)
    assert SweepSpec((a, b)).sweep_id == "d32_L2_H4_B32"
    assert SweepSpec((a,), ()).sweep_id == a.run_id  # fuse nothing: the sweep is the run
    with pytest.raises(ValueError, match="differ in .*'d_model'"):
        SweepSpec((a, tiny(3e-3, d_model=16)))
    with pytest.raises(ValueError, match="does not fuse"):
        SweepSpec((a, b), ("seed",))
    with pytest.raises(ValueError, match="distinct"):
        SweepSpec((a, a))
    assert SweepSpec.from_dict(SweepSpec((a, b)).to_dict()) == SweepSpec((a, b))


def test_plan_groups_runs_by_the_configs_fuse():
    config = {"seed": [0, 1], "grid": {"d_model": [8, 16], "n_layers": [1], "lr": [1e-2, 1e-3],
                                        "batch_size": [8], "budgets": [7]},
              "tasks": {"addition": {"size": 8}}, "training": {}}
    fused = plan_sweeps(config)
    assert [s.k for s in fused] == [4, 4]  # one job per width: 2 lrs x 2 seeds
    assert {m.run_id for m in fused[0].members} == {
        f"d8_L1_H4_lr{lr}_B8_s{seed}" for lr in (0.01, 0.001) for seed in (0, 1)}
    by_lr = plan_sweeps({**config, "training": {"fuse": ["lr"]}})
    assert [s.k for s in by_lr] == [2, 2, 2, 2] and by_lr[0].sweep_id == "d8_L1_H4_B8_s0"
    alone = plan_sweeps({**config, "training": {"fuse": []}})
    assert len(alone) == 8 and all(s.k == 1 for s in alone)
    single = plan_sweeps({**config, "seed": 3})  # one seed: run_ids as before, no _s
    assert single[0].run_ids == ["d8_L1_H4_lr0.01_B8", "d8_L1_H4_lr0.001_B8"]


@pytest.mark.parametrize("raw,match", [
    ({"seed": []}, "seed"), ({"seed": [0, 0]}, "seed"), ({"seed": [0, -1]}, "seed"),
    ({"training": {"fuse": ["batch_size"]}}, "training.fuse"),
    ({"training": {"monitor": ["subtraction"]}}, "training.monitor"),
    ({"training": {"monitor": "yes"}}, "training.monitor")])
def test_bad_seed_and_sweep_options_are_rejected(raw, match):
    with pytest.raises(ValueError, match=match):
        validate_config({"tasks": {"addition": {"size": 8}}, **raw})


def test_the_command_line_trains_lr_x_seed_as_one_sweep(tmp_path):
    parser = argparse.ArgumentParser()
    train.add_train_arguments(parser)
    common = ["--task", "addition", "--size", "6", "--budget", "3e8", "--d-model", "16",
              "--n-layers", "1", "--batch-size", "32", "--ctx", "20", "--n-val", "64",
              "--n-test", "32", "--n-probe-train", "0", "--n-probe-test", "0"]
    args = parser.parse_args(common + ["--lr", "1e-2,1e-3", "--seed", "0,1",
                                       "--out-dir", str(tmp_path)])
    assert train.train_from_args(args) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"d16_L1_H4_lr{lr}_B32_s{s}.json" for lr in ("0.01", "0.001")
                             for s in (0, 1))
    assert {json.loads((tmp_path / n).read_text())["summary"]["sweep"]["k"] for n in written} == {4}
    with pytest.raises(ValueError, match="--out-dir"):
        train.train_from_args(parser.parse_args(common + ["--lr", "1e-2,1e-3", "--out", "x.json"]))
    with pytest.raises(SystemExit):  # --out and --out-dir exclude each other
        parser.parse_args(common + ["--lr", "1e-2", "--out", "x", "--out-dir", "y"])


def test_group_sweeps_keeps_plan_order():
    runs = [tiny(lr, seed) for seed in (0, 1) for lr in (3e-3, 1e-2)]
    sweeps = group_sweeps(runs, ("lr",))
    assert [[m.seed for m in s.members] for s in sweeps] == [[0, 0], [1, 1]]
    assert [m.lr for m in sweeps[0].members] == [3e-3, 1e-2]
