"""One training run: schedule, a tiny run whose loss falls, determinism, resume after a crash and
after kill -9 (bit-identical numbers), atomic records, NaN handling, bad input, saved weights."""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import qlf.train as train
from qlf.compute import RunSpec, flops_actual, make_spec
from qlf.data import Stream
from qlf.model import Transformer
from qlf.train import (DivergedError, evaluate_loss, final_weights_path, load_model, load_weights,
                       lr_at, resolve_weights, resume_path, train_run, val_steps,
                       weights_path)

# A tiny run: addition of 6-bit operands (2080 operand pairs), d 32, 2 layers, 40 steps of 32.
TINY = dict(task="addition", size=6, d_model=32, n_layers=2, n_heads=4, lr=3e-3, batch_size=32,
            seed=0, model_seed=1, ctx=20.0, n_val=128, n_test=128, n_probe_train=0,
            n_probe_test=0, val_points=5)
STEPS = 40
TIMING = {"wall_s", "setup_s", "data_s", "train_s", "eval_s", "io_s", "resumed_at", "sweep"}


def tiny_spec(**changes) -> RunSpec:
    args = {**TINY, **changes}
    budget = 0.999 * flops_actual(STEPS, args["batch_size"], args["ctx"], args["d_model"],
                                  args["n_layers"])
    return make_spec(budget=budget, **args)


def numbers(record: dict) -> dict:
    return {k: v for k, v in record["summary"].items() if k not in TIMING}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models run fastest (and reproducibly) on one CPU thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run that keeps weights at steps 0, 1, 2, 4, 40 and the final weights."""
    folder = tmp_path_factory.mktemp("reference")
    spec = tiny_spec()
    record = train_run(spec, folder / "run.json", run_dir=folder / "ckpt",
                       save_steps=(0, 1, 2, 4, STEPS), save_final=True, progress=False)
    return spec, record, folder


def test_resolve_weights_takes_a_step_folders_last_step(reference, tmp_path):
    spec, _, folder = reference
    run_dir = folder / "ckpt"
    # steps 0, 1, 2, 4, 40: the last by step, not only by name length
    assert resolve_weights(run_dir) == weights_path(run_dir, STEPS)
    assert load_weights(resolve_weights(run_dir))[1]["step"] == spec.steps == STEPS
    assert resolve_weights(final_weights_path(run_dir)) == final_weights_path(run_dir)
    with pytest.raises(FileNotFoundError, match="no weights_step"):
        resolve_weights(tmp_path)


# -- schedule ----------------------------------------------------------------------------------

def test_schedule_values():
    spec = tiny_spec(lr=2e-3)  # 40 steps: warmup W = 4
    assert spec.steps == 40 and spec.warmup_steps == 4
    lr = 2e-3
    assert lr_at(0, spec) == pytest.approx(0.01 * lr)
    assert lr_at(2, spec) == pytest.approx(lr * (0.01 + 0.99 * 2 / 4))
    assert lr_at(4, spec) == pytest.approx(lr)  # the peak ends the warmup
    assert lr_at(22, spec) == pytest.approx(0.1 * lr + 0.9 * lr * 0.5)  # half way down
    assert lr_at(40, spec) == pytest.approx(0.1 * lr)
    lrs = [lr_at(s, spec) for s in range(41)]
    assert all(a < b for a, b in zip(lrs[:4], lrs[1:5]))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    with pytest.raises(ValueError):
        lr_at(41, spec)


def test_schedule_without_warmup_starts_at_the_peak():
    spec = RunSpec.from_dict({**tiny_spec().to_dict(), "steps": 7})
    assert spec.warmup_steps == 0
    assert lr_at(0, spec) == pytest.approx(spec.lr)
    want = 0.1 * spec.lr + 0.9 * spec.lr * (1 + math.cos(math.pi * 3 / 7)) / 2
    assert lr_at(3, spec) == pytest.approx(want)


def test_val_steps_are_log_spaced_and_end_at_the_last_step():
    assert val_steps(1, 20) == [1]
    assert val_steps(40, 1) == [40]
    assert val_steps(3, 20) == [1, 2, 3]
    got = val_steps(1000, 4)
    assert got == [1, 10, 100, 1000]
    assert val_steps(40, 5)[-1] == 40 and len(val_steps(40, 5)) <= 5


# -- one run -----------------------------------------------------------------------------------

def test_tiny_run_learns_and_writes_a_complete_record(reference):
    spec, record, folder = reference
    on_disk = json.loads((folder / "run.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["spec"] == spec.to_dict()
    s = on_disk["summary"]
    curve = s["val_curve"]
    assert [step for step, _ in curve] == val_steps(STEPS, 5)
    assert curve[0][1] > curve[-1][1] + 0.3  # the validation loss falls
    assert s["val_loss"] == curve[-1][1]
    assert s["train_loss_last"] < s["train_loss"] < math.log(5) + 0.5
    assert 0 <= s["test_acc"] <= 1
    assert s["steps"] == STEPS and s["examples"] == STEPS * 32
    assert s["flops_nominal"] == spec.budget and s["flops_actual"] == spec.flops
    assert s["flops_actual"] >= s["flops_nominal"]
    assert s["seed"] == 0 and s["model_seed"] == 1
    assert set(s["versions"]) >= {"python", "torch", "lightning", "qlf"}
    assert s["provenance"]["torch"] == torch.__version__ and s["provenance"]["threads"] == 1
    assert len(s["provenance"]["qlf_source_sha256"]) == 16
    assert s["sweep"]["k"] == 1 and s["sweep"]["run_ids"] == [spec.run_id]
    split = s["setup_s"] + s["data_s"] + s["train_s"] + s["eval_s"] + s["io_s"]
    assert s["wall_s"] >= split > 0.9 * s["wall_s"]  # the split accounts for the wall time
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name] == []
    assert not resume_path(folder / "ckpt").exists()  # removed once the record is written


def test_same_spec_gives_the_same_numbers(reference, tmp_path):
    spec, record, _ = reference
    again = train_run(spec, tmp_path / "again.json", progress=False)  # no checkpoints this time
    assert numbers(again) == numbers(record)


def test_saved_weights_exist_and_load(reference):
    spec, record, folder = reference
    run_dir = folder / "ckpt"
    for step in (0, 1, 2, 4, STEPS):
        model, meta = load_weights(weights_path(run_dir, step))
        assert meta["step"] == step and meta["spec"] == spec.to_dict()
    init_model = load_model(weights_path(run_dir, 0))
    init = init_model.state_dict()
    torch.manual_seed(spec.model_seed)  # step 0 holds the initialisation
    fresh = Transformer(init_model.cfg)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in init.items())
    final = load_model(final_weights_path(run_dir))
    assert final.cfg.norm_eps == spec.norm_eps and final.cfg.d_model == spec.d_model
    last = load_model(weights_path(run_dir, STEPS)).state_dict()
    assert all(torch.equal(final.state_dict()[k], v) for k, v in last.items())
    assert not all(torch.equal(init[k], v) for k, v in last.items())
    # the final weights reproduce the recorded validation loss
    from qlf.tasks import get_task
    val = Stream(get_task("addition", 6), 0, train.Layout(128, 128, 0, 0)).examples("val")
    loss = evaluate_loss(final, torch.from_numpy(val.ids).long(),
                         torch.from_numpy(val.loss_mask).long())
    assert loss == pytest.approx(record["summary"]["val_loss"], rel=1e-6)
    with pytest.raises(FileNotFoundError):
        load_model(run_dir / "weights_step000003.pt")


# -- interruptions -----------------------------------------------------------------------------

def test_resume_after_a_crash_gives_identical_numbers(reference, tmp_path, monkeypatch):
    spec, record, _ = reference
    out, run_dir = tmp_path / "run.json", tmp_path / "ckpt"
    monkeypatch.setattr(train, "CHUNK_EXAMPLES", 8 * 32)  # fetch data every 8 steps
    original = Stream.examples

    def crash_at_step_16(self, split, start=0, count=None, features=True):
        if split == "train" and start >= 16 * 32:
            raise RuntimeError("simulated crash")
        return original(self, split, start, count, features)

    monkeypatch.setattr(Stream, "examples", crash_at_step_16)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_run(spec, out, run_dir=run_dir, ckpt_every_s=0, progress=False)
    assert not out.exists()  # a crashed run leaves no record
    assert torch.load(resume_path(run_dir), weights_only=True)["step"] == 16

    monkeypatch.setattr(Stream, "examples", original)
    resumed = train_run(spec, out, run_dir=run_dir, ckpt_every_s=0, progress=False)
    assert resumed["summary"]["resumed_at"] == [16]
    assert numbers(resumed) == numbers(record)


def test_kill_9_then_the_same_command_resumes_to_the_same_numbers(reference, tmp_path):
    spec, record, _ = reference
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    out, run_dir = tmp_path / "run.json", tmp_path / "ckpt"
    code = ("import json, sys, torch; torch.set_num_threads(1)\n"
            "from qlf.compute import RunSpec; from qlf.train import train_run\n"
            "spec = RunSpec.from_dict(json.load(open(sys.argv[1])))\n"
            "train_run(spec, sys.argv[2], run_dir=sys.argv[3], ckpt_every_s=0, progress=False)\n")
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "spec.json"),
                                 str(out), str(run_dir)], stderr=err)
    deadline = time.monotonic() + 120
    while not resume_path(run_dir).exists():  # wait until training has checkpointed a step
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never checkpointed:\n{log.read_text()}")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before the kill; nothing was interrupted"
    killed_at = torch.load(resume_path(run_dir), weights_only=True)["step"]
    assert 1 <= killed_at <= STEPS

    resumed = train_run(spec, out, run_dir=run_dir, ckpt_every_s=0, progress=False)
    assert resumed["summary"]["resumed_at"] == [killed_at]
    assert numbers(resumed) == numbers(record)
    assert resumed["summary"]["wall_s"] > resumed["summary"]["train_s"]  # summed over processes


def test_a_checkpoint_of_another_spec_is_refused(reference, tmp_path):
    spec, _, folder = reference
    run_dir = tmp_path / "ckpt"
    run_dir.mkdir()
    other = train.SweepSpec((tiny_spec(lr=1e-3),))
    from qlf.tasks import get_task
    _, stack, optimizer = train.build(other, get_task("addition", 6))
    state = train._start(other, None, stack, optimizer, {}, ())
    torch.save(train._resume_state(state, other, stack, optimizer, {}), resume_path(run_dir))
    with pytest.raises(ValueError, match="another run spec"):
        train_run(spec, tmp_path / "run.json", run_dir=run_dir, progress=False)


# -- failures ----------------------------------------------------------------------------------

def test_nan_loss_stops_with_an_error_and_no_record(tmp_path, monkeypatch):
    calls = []
    original = train.member_losses

    def nan_from_step_5(logits, targets, k, reduce=True):
        calls.append(reduce)  # training steps reduce; validation passes sum
        loss = original(logits, targets, k, reduce)
        return loss * float("nan") if reduce and sum(calls) >= 5 else loss

    monkeypatch.setattr(train, "member_losses", nan_from_step_5)
    out, run_dir = tmp_path / "run.json", tmp_path / "ckpt"
    with pytest.raises(DivergedError, match="NaN or infinite"):
        train_run(tiny_spec(val_points=1), out, run_dir=run_dir, ckpt_every_s=0, progress=False)
    assert not out.exists()
    saved = torch.load(resume_path(run_dir), weights_only=True)  # only finite states are saved
    assert saved["step"] == 4 and math.isfinite(saved["loss_sum"][0])


@pytest.mark.parametrize("changes,match", [
    (dict(d_model=30), "divisible"), (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"),
    (dict(task="subtraction"), "unknown task"), (dict(budget=0.0), "budget")])
def test_bad_specs_raise_before_any_work(changes, match):
    args = {**TINY, "budget": 1e9, **changes}
    with pytest.raises(ValueError, match=match):
        make_spec(**args)


def test_bad_requests_raise_before_any_work(tmp_path):
    spec = tiny_spec()
    out = tmp_path / "run.json"
    with pytest.raises(ValueError, match="save_steps"):
        train_run(spec, out, run_dir=tmp_path, save_steps=(STEPS + 1,))
    with pytest.raises(ValueError, match="run_dir"):
        train_run(spec, out, save_steps=(0,))
    with pytest.raises(ValueError, match="run_dir"):
        train_run(spec, out, save_final=True)
    with pytest.raises(ValueError, match="ckpt_every_s"):
        train_run(spec, out, run_dir=tmp_path, ckpt_every_s=-1)
    with pytest.raises(ValueError, match="RunSpec"):
        train_run(spec.to_dict(), out)
    small = RunSpec.from_dict({**spec.to_dict(), "size": 4, "steps": 100})  # 136 pairs only
    with pytest.raises(ValueError):
        train_run(small, out)
    assert not out.exists() and not resume_path(tmp_path).exists()


# -- command line ------------------------------------------------------------------------------

def test_cli_arguments_build_the_same_run(reference, tmp_path):
    spec, record, _ = reference
    parser = argparse.ArgumentParser()
    train.add_train_arguments(parser)
    out = tmp_path / "cli.json"
    args = parser.parse_args([
        "--task", "addition", "--size", "6", "--budget", repr(spec.budget), "--d-model", "32",
        "--n-layers", "2", "--n-heads", "4", "--lr", "3e-3", "--batch-size", "32", "--seed", "0",
        "--model-seed", "1", "--ctx", "20", "--n-val", "128", "--n-test", "128",
        "--n-probe-train", "0", "--n-probe-test", "0", "--val-points", "5", "--out", str(out),
        "--run-dir", str(tmp_path / "ckpt"), "--save-steps", "0,2", "--threads", "1"])
    assert train.train_from_args(args) == 0
    written = json.loads(out.read_text())
    assert written["spec"] == spec.to_dict()
    assert numbers(written) == json.loads(json.dumps(numbers(record)))
    assert weights_path(tmp_path / "ckpt", 2).exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["--task", "addition", "--budget", "1e9", "--d-model", "8",
                           "--n-layers", "1", "--lr", "1e-3", "--out", "x.json",
                           "--save-steps", "1,a"])


def test_bf16_mixed_precision_runs(tmp_path):
    spec = RunSpec.from_dict({**tiny_spec().to_dict(), "steps": 3, "precision": "bf16-mixed"})
    record = train_run(spec, tmp_path / "bf16.json", progress=False)
    assert record["summary"]["precision"] == "bf16-mixed"
    assert math.isfinite(record["summary"]["val_loss"])
