"""The `qlf` command as a user runs it (the installed entry point, in a subprocess)."""
import json
import shutil
import subprocess

import pytest

from qlf.tasks import TASKS

QLF = shutil.which("qlf")
pytestmark = pytest.mark.skipif(QLF is None, reason="the qlf entry point is not installed")


def qlf(*args, check=True):
    proc = subprocess.run([QLF, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"qlf {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_tasks_lists_every_registered_task_with_lengths():
    out = qlf("tasks").stdout
    for name in TASKS:
        assert name in out
    line = next(l for l in out.splitlines() if l.startswith("addition "))
    assert line.split()[1:5] == ["16", "bits", "5", "52"]


def test_show_json_matches_the_sum_and_the_labels():
    out = qlf("show", "addition", "--size", "6", "--n", "5", "--seed", "3", "--json",
              "--layout", "0,0,0,0").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 5
    for rec in records:
        ids, L = rec["ids"], 6
        a = sum(b << i for i, b in enumerate(ids[:L]))
        b = sum(b << i for i, b in enumerate(ids[L + 1: 2 * L + 1]))
        s = sum(b << i for i, b in enumerate(ids[2 * L + 2: 3 * L + 3]))
        assert s == a + b and rec["tokens"][2 * L + 1] == "="
        assert rec["loss_mask"] == [0] * (2 * L + 1) + [1] * (L + 3)
        first = rec["features"]["retrieve_first_op"]
        assert first["kind"] == "binary" and first["positions"] == list(range(13, 19))
        assert first["labels"] == ids[:L]


def test_show_plain_prints_sequence_and_features():
    out = qlf("show", "addition", "--size", "4", "--n", "1", "--layout", "0,0,0,0").stdout
    lines = out.splitlines()
    assert lines[1].endswith("<EOS>") and "+" in lines[1] and "=" in lines[1]
    assert any(l.strip().startswith("carry [binary] @10:") for l in lines)


def test_show_is_deterministic():
    args = ("show", "maximum_subarray", "--size", "10", "--n", "3", "--json", "--seed", "5")
    assert qlf(*args).stdout == qlf(*args).stdout


@pytest.mark.parametrize("args, message", [
    (("show", "nope"), "unknown task 'nope'"),
    (("show", "addition", "--size", "99"), "out of range"),
    (("show", "addition", "--size", "3"), "distinct instances"),
    (("show", "graph_path", "--size", "5", "--graphs-dir", "/nonexistent"), "qlf graphs 5"),
])
def test_bad_input_is_a_clear_error(args, message):
    proc = qlf(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
