"""Where geng comes from: QLF_GENG, then the passagemath-nauty wheel, then PATH; and `qlf graphs`
with nothing on PATH but the Python environment's scripts."""
import os
import subprocess
import sysconfig
from importlib import metadata
from itertools import combinations
from pathlib import Path

import networkx as nx
import pytest

import qlf.graphs
from qlf.graphs import GENG_WHEEL, find_geng, graph_file_path, wheel_geng


def fake_exe(folder: Path, name: str, executable=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def fake_wheel(site: Path, name: str, executable=True) -> Path:
    """A minimal installed distribution `name` whose RECORD lists sage_wheels/bin/geng."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"sage_wheels/bin/geng,,\n{info.name}/RECORD,,\n")
    return fake_exe(site / "sage_wheels" / "bin", "geng", executable)


@pytest.fixture
def no_wheel(monkeypatch):
    """Look for a wheel that is not installed (through the real importlib.metadata lookup)."""
    monkeypatch.setattr(qlf.graphs, "GENG_WHEEL", "qlf-test-no-such-wheel")
    monkeypatch.delenv("QLF_GENG", raising=False)


def test_qlf_geng_comes_first(tmp_path, monkeypatch):
    mine = fake_exe(tmp_path / "mine", "my-geng")
    monkeypatch.setenv("PATH", str(fake_exe(tmp_path / "bin", "geng").parent))
    monkeypatch.setenv("QLF_GENG", str(mine))
    assert wheel_geng() is not None  # the wheel is there too, and loses
    assert find_geng() == str(mine)


@pytest.mark.parametrize("kind", ["missing", "not executable", "a folder"])
def test_qlf_geng_that_is_not_an_executable_is_an_error(tmp_path, monkeypatch, kind):
    target = {"missing": tmp_path / "nope",
              "not executable": fake_exe(tmp_path, "geng", executable=False),
              "a folder": tmp_path}[kind]
    monkeypatch.setenv("QLF_GENG", str(target))
    with pytest.raises(FileNotFoundError, match="QLF_GENG=.* is not an executable file"):
        find_geng()


def test_the_wheel_comes_before_path(tmp_path, monkeypatch):
    monkeypatch.delenv("QLF_GENG", raising=False)
    monkeypatch.setenv("PATH", str(fake_exe(tmp_path / "bin", "geng").parent))
    dist = metadata.distribution(GENG_WHEEL)  # the pipeline extra installs it
    expected = Path(dist.locate_file("sage_wheels/bin/geng"))
    assert find_geng() == wheel_geng() == str(expected)
    assert os.access(expected, os.X_OK)
    # it is nauty's geng: the connected graphs on 6 nodes (OEIS A001349)
    out = subprocess.run([find_geng(), "-c", "-q", "6"], capture_output=True, check=True).stdout
    assert len(out.splitlines()) == 112


def test_wheel_found_through_its_file_list(tmp_path, monkeypatch):
    exe = fake_wheel(tmp_path / "site", "qlf-test-fake-nauty")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(qlf.graphs, "GENG_WHEEL", "qlf-test-fake-nauty")
    monkeypatch.delenv("QLF_GENG", raising=False)
    assert find_geng() == str(exe)


def test_broken_wheel_is_an_error(tmp_path, monkeypatch):
    fake_wheel(tmp_path / "site", "qlf-test-broken-nauty", executable=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(qlf.graphs, "GENG_WHEEL", "qlf-test-broken-nauty")
    monkeypatch.delenv("QLF_GENG", raising=False)
    with pytest.raises(FileNotFoundError, match="not an executable file; reinstall"):
        find_geng()


def test_path_geng_then_nauty_geng(tmp_path, monkeypatch, no_wheel):
    debian = fake_exe(tmp_path / "debian", "nauty-geng")
    plain = fake_exe(tmp_path / "plain", "geng")
    monkeypatch.setenv("PATH", os.pathsep.join([str(debian.parent), str(plain.parent)]))
    assert find_geng() == str(plain)
    monkeypatch.setenv("PATH", str(debian.parent))
    assert find_geng() == str(debian)


def test_nowhere_names_all_three_places(tmp_path, monkeypatch, no_wheel):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        find_geng()
    for where in ("QLF_GENG", "qlf-test-no-such-wheel", "`geng`", "`nauty-geng`",
                  "apt-get install nauty"):
        assert where in str(err.value)


def test_qlf_graphs_with_only_the_python_scripts_on_path(tmp_path, graphs_dir):
    """A user's pip install alone: no geng on PATH, no QLF_GENG; the wheel's geng does it."""
    scripts = sysconfig.get_path("scripts")
    assert not any(os.access(Path(scripts) / n, os.X_OK) for n in ("geng", "nauty-geng"))
    env = {"PATH": scripts, "HOME": str(tmp_path)}
    proc = subprocess.run([str(Path(scripts) / "qlf"), "graphs", "7"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = graph_file_path(tmp_path / "resources/graphs", 7)
    lines = made.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 853  # connected graphs on 7 nodes, OEIS A001349
    assert made.read_bytes() == graph_file_path(graphs_dir, 7).read_bytes()
    graphs = [nx.from_graph6_bytes(line) for line in lines]
    assert all(g.number_of_nodes() == 7 and nx.is_connected(g) for g in graphs)
    groups = {}
    for g in graphs:
        groups.setdefault(tuple(sorted(d for _, d in g.degree)), []).append(g)
    assert not any(nx.is_isomorphic(g, h) for group in groups.values()
                   for g, h in combinations(group, 2))
