"""Graph files from geng: counts, determinism, uniform thinning, graph6 decoding, errors."""
import pickle
import subprocess
from collections import Counter

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from qlf.graphs import (GraphFile, find_geng, graph_file_path, line_length, make_graph_file,
                        relabel)

CONNECTED_GRAPHS = {5: 21, 6: 112, 7: 853, 8: 11117}  # OEIS A001349


def read_lines(path):
    return open(path, "rb").read().split(b"\n")[:-1]


def all_graphs(gf):
    return gf.adjacency(np.arange(gf.count))


def edge_counts(gf):
    return all_graphs(gf).sum((1, 2)) // 2


@pytest.fixture(scope="module")
def graph8(tmp_path_factory):
    path = tmp_path_factory.mktemp("g8") / "graph8c.g6"
    make_graph_file(8, path, jobs=1)
    return GraphFile(path, 8)


@pytest.mark.parametrize("n", [5, 6, 7])
def test_counts_match_known_numbers_of_connected_graphs(graphs_dir, n):
    gf = GraphFile(graph_file_path(graphs_dir, n), n)
    assert gf.count == len(gf) == CONNECTED_GRAPHS[n]
    assert gf.line_length == len(read_lines(gf.path)[0]) + 1


def test_summary_counts(tmp_path):
    summary = make_graph_file(6, tmp_path / "g.g6", keep=0.5, seed=3, jobs=1)
    assert summary["seen"] == 112
    assert summary["kept"] == len(read_lines(tmp_path / "g.g6"))
    assert 0 < summary["kept"] < 112
    assert {"n", "keep", "seed", "parts", "line_length", "path", "seconds"} <= set(summary)


def test_file_holds_connected_pairwise_non_isomorphic_graphs(graphs_dir):
    gf = GraphFile(graph_file_path(graphs_dir, 6), 6)
    graphs = [nx.from_numpy_array(a.astype(int)) for a in all_graphs(gf)]
    assert all(nx.is_connected(g) for g in graphs)
    by_hash = {}
    for g in graphs:
        by_hash.setdefault(tuple(sorted(d for _, d in g.degree)), []).append(g)
    for group in by_hash.values():
        for i, g in enumerate(group):
            assert not any(nx.is_isomorphic(g, h) for h in group[i + 1:])


def test_same_seed_same_bytes_other_seed_other_sample(tmp_path):
    a = make_graph_file(7, tmp_path / "a.g6", keep=0.4, seed=11, jobs=1)
    b = make_graph_file(7, tmp_path / "b.g6", keep=0.4, seed=11, jobs=2, parts=1)
    c = make_graph_file(7, tmp_path / "c.g6", keep=0.4, seed=12, jobs=1)
    assert (tmp_path / "a.g6").read_bytes() == (tmp_path / "b.g6").read_bytes()
    assert a["kept"] == b["kept"]
    assert set(read_lines(tmp_path / "a.g6")) != set(read_lines(tmp_path / "c.g6"))
    assert c["seen"] == 853


def test_smaller_keep_gives_a_nested_sample(tmp_path):
    make_graph_file(7, tmp_path / "small.g6", keep=0.2, seed=5, jobs=1)
    make_graph_file(7, tmp_path / "large.g6", keep=0.6, seed=5, jobs=1)
    small, large = set(read_lines(tmp_path / "small.g6")), set(read_lines(tmp_path / "large.g6"))
    assert small < large


@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_res_mod_parallel_equals_single_process_as_multiset(tmp_path, keep):
    make_graph_file(7, tmp_path / "one.g6", keep=keep, seed=2, jobs=1, parts=1)
    summary = make_graph_file(7, tmp_path / "five.g6", keep=keep, seed=2, jobs=2, parts=5)
    assert summary["parts"] == 5 and summary["seen"] == 853
    one, five = read_lines(tmp_path / "one.g6"), read_lines(tmp_path / "five.g6")
    assert Counter(one) == Counter(five)
    assert one != five  # the classes really were separate runs (different order)


def test_keep_one_file_equals_geng_output(graphs_dir):
    geng = subprocess.run([find_geng(), "-c", "-q", "5"], capture_output=True, check=True)
    assert graph_file_path(graphs_dir, 5).read_bytes() == geng.stdout


def test_thinned_sample_is_uniform_over_edge_counts(tmp_path, graph8):
    keep = 0.3
    make_graph_file(8, tmp_path / "s.g6", keep=keep, seed=0, jobs=1)
    sample = GraphFile(tmp_path / "s.g6", 8)
    full_edges, sample_edges = edge_counts(graph8), edge_counts(sample)
    total = len(full_edges)
    assert abs(sample.count - keep * total) < 4 * np.sqrt(total * keep * (1 - keep))
    # chi-square of the sample's edge-count histogram against the full file's proportions
    bins = np.arange(7, 29)
    expected = np.array([(full_edges == e).sum() for e in bins]) / total * sample.count
    observed = np.array([(sample_edges == e).sum() for e in bins])
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert chi2 < stats.chi2.ppf(0.999, len(obs) - 1)
    # and the mean, against sampling without replacement
    se = full_edges.std() * np.sqrt((1 - keep) / sample.count)
    assert abs(sample_edges.mean() - full_edges.mean()) < 4 * se


def test_a_single_geng_class_is_not_a_uniform_sample(tmp_path, graph8):
    out = subprocess.run([find_geng(), "-c", "-q", "8", "3/4"], capture_output=True,
                         check=True).stdout
    (tmp_path / "c.g6").write_bytes(out)
    part = GraphFile(tmp_path / "c.g6", 8)
    full_edges, part_edges = edge_counts(graph8), edge_counts(part)
    se = full_edges.std() / np.sqrt(part.count)
    assert abs(part_edges.mean() - full_edges.mean()) > 8 * se


@pytest.mark.parametrize("n", [5, 7])
def test_adjacency_decodes_like_networkx(graphs_dir, n):
    gf = GraphFile(graph_file_path(graphs_dir, n), n)
    lines = read_lines(gf.path)
    idx = np.arange(gf.count)[::-1].copy()
    adj = gf.adjacency(idx)
    assert adj.shape == (gf.count, n, n) and adj.dtype == bool
    for a, i in zip(adj, idx):
        expected = nx.to_numpy_array(nx.from_graph6_bytes(lines[i]), nodelist=range(n)) > 0
        np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(gf.adjacency(np.array([3], np.uint64)), adj[-4:-3])


def test_adjacency_large_n_against_networkx(tmp_path):
    rng = np.random.default_rng(0)
    graphs = [nx.gnp_random_graph(26, 0.3, seed=int(s)) for s in rng.integers(0, 1000, 5)]
    data = b"".join(nx.to_graph6_bytes(g, header=False) for g in graphs)
    (tmp_path / "g.g6").write_bytes(data)
    gf = GraphFile(tmp_path / "g.g6", 26)
    assert gf.line_length == line_length(26) == 1 + 55 + 1
    for a, g in zip(gf.adjacency(np.arange(5)), graphs):
        np.testing.assert_array_equal(a, nx.to_numpy_array(g, nodelist=range(26)) > 0)


def test_graph_file_pickles_by_path(graphs_dir):
    gf = GraphFile(graph_file_path(graphs_dir, 6), 6)
    blob = pickle.dumps(gf)
    assert len(blob) < 1000
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.adjacency(np.arange(10)), gf.adjacency(np.arange(10)))


def test_progress_callback_gets_the_final_counts(tmp_path):
    calls = []
    make_graph_file(6, tmp_path / "g.g6", keep=1.0, jobs=1, progress=calls.append)
    assert calls and calls[-1]["seen"] == calls[-1]["kept"] == 112


def test_wrong_node_count_is_refused(graphs_dir):
    with pytest.raises(ValueError, match="holds graphs on 6 nodes, not 7"):
        GraphFile(graph_file_path(graphs_dir, 6), 7)


def test_missing_file_names_the_command(tmp_path):
    path = graph_file_path(tmp_path, 9)
    with pytest.raises(FileNotFoundError, match=f"qlf graphs 9 --out {path}") as err:
        GraphFile(path, 9)
    assert "--keep" in str(err.value)


def test_truncated_or_empty_file_is_refused(graphs_dir, tmp_path):
    data = graph_file_path(graphs_dir, 7).read_bytes()
    (tmp_path / "cut.g6").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="not a multiple"):
        GraphFile(tmp_path / "cut.g6", 7)
    (tmp_path / "empty.g6").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        GraphFile(tmp_path / "empty.g6", 7)


def test_bad_line_indices_are_refused(graphs_dir):
    gf = GraphFile(graph_file_path(graphs_dir, 5), 5)
    for bad in (np.array([21]), np.array([-1]), np.array([[0]]), np.array([0.5])):
        with pytest.raises(ValueError):
            gf.adjacency(bad)


@pytest.mark.parametrize("kwargs", [dict(keep=0.0), dict(keep=1.5), dict(n=0), dict(n=27),
                                    dict(jobs=0), dict(parts=0), dict(seed=-1)])
def test_bad_make_arguments_are_refused(tmp_path, kwargs):
    args = dict(n=5, out=tmp_path / "g.g6") | kwargs
    with pytest.raises(ValueError):
        make_graph_file(**args)
    assert not (tmp_path / "g.g6").exists()


def test_relabel_matches_networkx():
    rng = np.random.default_rng(1)
    g = nx.gnp_random_graph(9, 0.4, seed=3)
    adj = (nx.to_numpy_array(g, nodelist=range(9)) > 0)[None]
    perm = rng.permutation(9)[None]
    moved = nx.relabel_nodes(g, {v: int(perm[0, v]) for v in range(9)})
    expected = nx.to_numpy_array(moved, nodelist=range(9)) > 0
    np.testing.assert_array_equal(relabel(adj, perm)[0], expected)
