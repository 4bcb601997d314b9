"""The four extra graph tasks (extra-tasks.md §7-§10) and their graph classes, against brute
force, plain-Python simulations and networkx; the spec's worked examples as exact vectors."""
import pickle
from itertools import combinations, product

import networkx as nx
import numpy as np
import pytest

from qlf.graphs import (GRAPH_CLASSES, GraphFile, graph_file_name, graph_file_path, keep_mask,
                        make_graph_file, parse_graph_file_name)
from qlf.tasks import get_task
from qlf.tasks.graph_extra import (GraphEulerianCircuit, GraphLongestPath,
                                   GraphMaximumIndependentSet, GraphMaxCut, longest_path,
                                   maximum_cut, maximum_independent_set)

MIS, CUT = "graph_maximum_independent_set", "graph_maxcut"
PATH, EULER = "graph_longest_path", "graph_eulerian_circuit"
ALL = (MIS, CUT, PATH, EULER)
CLASS_OF = {MIS: "perfect", CUT: "connected_planar", PATH: "connected",
            EULER: "connected_eulerian"}
NODES = (3, 4, 5, 6, 7)
EXAMPLE_EDGES = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]  # extra-tasks.md §7.6, §8.6, §9.6


@pytest.fixture(scope="module")
def class_dir(tmp_path_factory):
    """Every graph class on 3 to 7 nodes, complete files made by geng (+ filters)."""
    folder = tmp_path_factory.mktemp("class_graphs")
    for name in GRAPH_CLASSES:
        for n in NODES:
            make_graph_file(n, graph_file_path(folder, n, name), jobs=1, graph_class_name=name)
    return folder


def adjacency_of(n, edges):
    adj = np.zeros((1, n, n), bool)
    for u, v in edges:
        adj[0, u, v] = adj[0, v, u] = True
    return adj


def nx_graph(n, edges):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return g


def edges_of(adj):
    return [(u, v) for u, v in combinations(range(adj.shape[0]), 2) if adj[u, v]]


def file_graphs(folder, name, n):
    gf = GraphFile(graph_file_path(folder, n, name), n)
    return gf.adjacency(np.arange(gf.count))


def random_graphs(n, k, p, seed, connected=False):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < k:
        upper = np.triu(rng.random((n, n)) < p, 1)
        adj = upper | upper.T
        if not connected or nx.is_connected(nx.from_numpy_array(adj.astype(int))):
            out.append(adj)
    return np.array(out)


def parse(task, row):
    """Edges, answer tokens and op of one token row (no prefix tokens in these tasks)."""
    row = [int(t) for t in row]
    op = row.index(task.eq_id)
    edges = list(zip(row[0:op:2], row[1:op:2]))
    return edges, row[op + 1:row.index(task.eos_id, op)], op


def generated(folder, name, n, k=200, seed=0):
    task = get_task(name, n, folder)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, task.space_size, k).astype(np.uint64)
    salt = rng.integers(0, 2**63, k, dtype=np.int64).astype(np.uint64)
    return task, index, task.generate(index, salt)


# -- independent implementations ----------------------------------------------------------------

def brute_mis(n, edges):
    """The first independent k-subset in itertools order, for k = n down to 1 (§7.3)."""
    edge_set = {tuple(sorted(e)) for e in edges}
    for k in range(n, 0, -1):
        for c in combinations(range(n), k):
            if not any(p in edge_set for p in combinations(c, 2)):
                return list(c)
    raise AssertionError("unreachable")


def brute_maxcut(n, edges):
    """Node 0 on side A; the first maximum over (b_1..b_{n-1}) in lexicographic order (§8.3)."""
    best, side = -1, None
    for bits in product((0, 1), repeat=n - 1):
        s = (0,) + bits
        cut = sum(s[u] != s[v] for u, v in edges)
        if cut > best:
            best, side = cut, s
    return [v for v in range(n) if side[v] == 0], [v for v in range(n) if side[v]], best


def brute_longest_path(n, edges):
    """Every simple path from every start (both orientations): most nodes, then smallest."""
    g = nx_graph(n, edges)
    best = []

    def extend(path, seen):
        nonlocal best
        if len(path) > len(best) or (len(path) == len(best) and path < best):
            best = list(path)
        for w in sorted(g[path[-1]]):
            if w not in seen:
                extend(path + [w], seen | {w})

    for s in range(n):
        extend([s], {s})
    return best


def sim_hierholzer(n, edges):
    """§10.3 as written: smallest-id unused neighbour first, the pop order is the answer."""
    unused = {v: set() for v in range(n)}
    for u, v in edges:
        unused[u].add(v)
        unused[v].add(u)
    stack, out = [min(v for v in range(n) if unused[v])], []
    while stack:
        v = stack[-1]
        if unused[v]:
            w = min(unused[v])
            unused[v].discard(w)
            unused[w].discard(v)
            stack.append(w)
        else:
            out.append(stack.pop())
    return out


def brute_perfect(n, edges):
    """Perfect by definition: clique number == chromatic number on every induced subgraph."""
    nbr = [0] * n
    for u, v in edges:
        nbr[u] |= 1 << v
        nbr[v] |= 1 << u
    omega, chi, indep = [0] * (1 << n), [0] * (1 << n), [True] * (1 << n)
    for s in range(1, 1 << n):
        v = (s & -s).bit_length() - 1
        rest = s & ~(1 << v)
        omega[s] = max(omega[rest], 1 + omega[rest & nbr[v]])
        indep[s] = indep[rest] and not rest & nbr[v]
        # colour the lowest node's class first: an independent set holding it, then the rest
        best, sub = n, rest
        while True:
            if indep[sub | 1 << v]:
                best = min(best, 1 + chi[rest & ~sub])
            if sub == 0:
                break
            sub = (sub - 1) & rest
        chi[s] = best
        if omega[s] != chi[s]:
            return False
    return True


# -- worked examples (exact vectors) -------------------------------------------------------------

def test_mis_worked_example_and_tie_break():
    task = GraphMaximumIndependentSet(5)
    ex = task.encode(adjacency_of(5, EXAMPLE_EDGES))
    ids = [0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 1, 2, 4]
    assert task.seq_len == 27 and ex.ids[0].tolist() == ids + [27] * 13
    # the path 0-1-2-3: maximum sets {0,2}, {0,3}, {1,3}; the reference emits {0,2}
    path = GraphMaximumIndependentSet(4).encode(adjacency_of(4, [(0, 1), (1, 2), (2, 3)]))
    assert path.ids[0, 6:9].tolist() == [26, 0, 2] and path.ids[0, 9] == 27
    f = ex.features
    assert f["mis_membership"].positions.tolist() == [[10]]
    assert f["mis_membership"].labels.tolist() == [[[0, 1, 1, 0, 1]]]
    assert f["mis_size"].labels.tolist() == [[3]]
    assert f["adjacency_list"].positions[0].tolist() == [11, 12, 13, -1, -1]
    assert f["adjacency_list"].labels[0, :3].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 1, 0],
                                                           [0, 0, 0, 1, 0]]


def test_maxcut_worked_example():
    task = GraphMaxCut(5)
    assert task.vocab_size == 29 and task.tokens[26:] == ("|", "=", "<EOS>")
    ex = task.encode(adjacency_of(5, EXAMPLE_EDGES))
    ids = [0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 27, 0, 3, 26, 1, 2, 4]
    assert task.seq_len == 28 and ex.ids[0].tolist() == ids + [28] * 11
    assert task.render(ex.ids[0]) == "ABACBDCDDE=AD|BCE<EOS>"
    f = ex.features
    assert f["side_membership"].labels.tolist() == [[[1, 0, 0, 1, 0]]]
    assert f["cut_size"].labels.tolist() == [[5]]
    assert f["adjacency_list"].positions[0].tolist() == [11, 12, 14, 15, 16]


def test_longest_path_worked_example():
    task = GraphLongestPath(5)
    ex = task.encode(adjacency_of(5, EXAMPLE_EDGES))
    ids = [0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 1, 0, 2, 3, 4]  # the [FIX] answer `B A C D E`
    assert task.seq_len == 27 and ex.ids[0].tolist() == ids + [27] * 11
    f = ex.features
    assert f["path_length"].labels.tolist() == [[5]]
    visited = f["visited_set"].labels[0].tolist()
    assert visited == [[0, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0],
                       [1, 1, 1, 1, 1]]


def test_euler_worked_examples():
    task = GraphEulerianCircuit(11)
    edges = [(0, 1), (0, 5), (0, 6), (0, 10), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8),
             (8, 9), (9, 10)]
    ex = task.encode(adjacency_of(11, edges))
    ids = [0, 1, 0, 5, 0, 6, 0, 10, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 8, 9, 9, 10, 26,
           0, 10, 9, 8, 7, 6, 0, 5, 4, 3, 2, 1, 0]
    assert task.seq_len == 168  # [FIX] of the reference's 167
    assert ex.ids[0].tolist() == ids + [27] * 130
    splice = GraphEulerianCircuit(5).encode(
        adjacency_of(5, [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)]))
    assert splice.ids[0, 12:21].tolist() == [26, 0, 2, 4, 3, 2, 1, 0, 27]
    f = splice.features
    assert f["num_edges"].labels.tolist() == [[6]]
    assert f["remaining_degree"].labels[0].tolist() == [2, 3, 1, 1, 1, 1]
    assert f["remaining_neighbors"].positions[0].tolist() == [13, 14, 15, 16, 17, 18]


def test_euler_complete_graph_ends_in_eos():
    """K11 fills 3*55 + 2 tokens: the reference's length left no EOS (§10.2)."""
    task = GraphEulerianCircuit(11)
    ex = task.encode(~np.eye(11, dtype=bool)[None])
    assert ex.ids[0, -1] == task.eos_id and ex.ids[0, -2] == 0
    assert ex.loss_mask[0].sum() == 55 + 1 + 1 + 1  # '=', 56 circuit nodes, EOS
    assert ex.loss_mask[0, -1] == 1


# -- answers against brute force ------------------------------------------------------------------

@pytest.mark.parametrize("n", NODES)
def test_mis_on_every_perfect_graph_matches_brute_force(class_dir, n):
    task, index, ex = generated(class_dir, MIS, n, k=150, seed=n)
    for row in ex.ids:
        edges, answer, _ = parse(task, row)
        assert answer == brute_mis(n, edges)
    # the algorithm does not need perfection: random graphs, independence number by networkx
    adj = random_graphs(9, 40, 0.4, seed=n)
    member = maximum_independent_set(adj)
    for a, m in zip(adj, member):
        assert np.flatnonzero(m).tolist() == brute_mis(9, edges_of(a))
        complement = nx.complement(nx.from_numpy_array(a.astype(int)))
        assert m.sum() == nx.max_weight_clique(complement, weight=None)[1]


@pytest.mark.parametrize("n", NODES)
def test_maxcut_matches_brute_force(class_dir, n):
    task, _, ex = generated(class_dir, CUT, n, k=150, seed=n)
    for row in ex.ids:
        edges, answer, _ = parse(task, row)
        a, b, best = brute_maxcut(n, edges)
        assert answer == a + [26] + b
        assert nx.cut_size(nx_graph(n, edges), a, b) == best
    adj = random_graphs(10, 30, 0.5, seed=n)
    side_b, cut = maximum_cut(adj)
    for g, s, c in zip(adj, side_b, cut):
        a, b, best = brute_maxcut(10, edges_of(g))
        assert np.flatnonzero(s).tolist() == b and c == best


@pytest.mark.parametrize("n", NODES)
def test_longest_path_matches_brute_force(class_dir, n):
    task, _, ex = generated(class_dir, PATH, n, k=150, seed=n)
    for row in ex.ids:
        edges, answer, _ = parse(task, row)
        assert answer == brute_longest_path(n, edges)
    # sparse graphs on 10 nodes: longest paths often miss several nodes, and several node
    # sets hold one
    adj = random_graphs(10, 30, 0.22, seed=n, connected=True)
    path, nodes = longest_path(adj)
    slack = set()
    for g, p, k in zip(adj, path, nodes):
        expected = brute_longest_path(10, edges_of(g))
        assert p[p >= 0].tolist() == expected and k == len(expected)
        slack.add(10 - k)
    assert len(slack) >= 3


@pytest.mark.parametrize("n", NODES)
def test_euler_circuit_is_valid_and_follows_the_rule(class_dir, n):
    task, _, ex = generated(class_dir, EULER, n, k=100, seed=n)
    for row in ex.ids:
        edges, answer, _ = parse(task, row)
        walked = sorted(tuple(sorted(e)) for e in zip(answer, answer[1:]))
        assert walked == sorted(edges) and answer[0] == answer[-1] == 0
        assert answer == sim_hierholzer(n, edges)
        # networkx's Hierholzer takes the first neighbour of its adjacency dicts, which are
        # ascending for a graph built from the sorted edge list: the same rule
        circuit = list(nx.eulerian_circuit(nx_graph(n, edges), source=0))
        assert answer == [circuit[0][0]] + [v for _, v in circuit]


# -- features against independent computations -----------------------------------------------------

def check_node_rows(fl, b, row, nodes, labels_of):
    """Example b's rows r = 0..len(nodes)-1 sit at tokens equal to nodes[r] and hold
    labels_of(r); later rows do not exist."""
    positions, labels, r = fl.positions[b], fl.labels[b], len(nodes)
    assert (positions[:r] >= 0).all() and (positions[r:] == -1).all()
    assert [int(row[p]) for p in positions[:r]] == nodes
    for i in range(r):
        assert set(np.flatnonzero(labels[i]).tolist()) == labels_of(i)


def one_row(fl, b, op):
    assert fl.positions[b].tolist() == [op]
    return fl.labels[b, 0]


@pytest.mark.parametrize("n", [5, 7])
def test_features_match_independent_computations(class_dir, n):
    for name in ALL:
        task, _, ex = generated(class_dir, name, n, k=80, seed=n + 1)
        f = ex.features
        assert set(f) == {feature.name for feature in task.features}
        for feature in task.features:
            assert feature.doc.startswith("Proposal") and f[feature.name].kind == feature.kind
        for b, row in enumerate(ex.ids):
            edges, answer, op = parse(task, row)
            g = nx_graph(n, edges)
            if name == MIS:
                assert set(np.flatnonzero(one_row(f["mis_membership"], b, op))) == set(answer)
                assert one_row(f["mis_size"], b, op) == len(answer)
                check_node_rows(f["adjacency_list"], b, row, answer,
                                lambda i: set(g[answer[i]]))
            elif name == CUT:
                bar = answer.index(26)
                a, b_side = answer[:bar], answer[bar + 1:]
                assert set(np.flatnonzero(one_row(f["side_membership"], b, op))) == set(a)
                assert one_row(f["cut_size"], b, op) == nx.cut_size(g, a, b_side)
                emitted = a + b_side
                check_node_rows(f["adjacency_list"], b, row, emitted,
                                lambda i: set(g[emitted[i]]))
            elif name == PATH:
                assert one_row(f["path_length"], b, op) == len(answer)
                check_node_rows(f["adjacency_list"], b, row, answer,
                                lambda i: set(g[answer[i]]))
                check_node_rows(f["visited_set"], b, row, answer,
                                lambda i: set(answer[:i + 1]))
            else:
                m = len(edges)
                assert one_row(f["num_edges"], b, op) == m
                walked = [set()]  # walked[r]: the circuit's edges before it reaches c_r
                for r in range(1, m):
                    walked.append(walked[-1] | {frozenset(answer[r - 1:r + 1])})

                def remaining(r):
                    return {w for w in g[answer[r]] if frozenset((answer[r], w)) not in walked[r]}
                check_node_rows(f["remaining_neighbors"], b, row, answer[:m], remaining)
                degree = f["remaining_degree"]
                assert degree.labels[b, :m].tolist() == [len(remaining(r)) for r in range(m)]
                assert (degree.positions[b] == f["remaining_neighbors"].positions[b]).all()
                assert all(answer[r + 1] in remaining(r) for r in range(m))


# -- graph classes ------------------------------------------------------------------------------

def atlas_graphs(n):
    return [g for g in nx.graph_atlas_g() if g.number_of_nodes() == n]


CLASS_TESTS = {
    "connected": nx.is_connected,
    "perfect": lambda g: brute_perfect(g.number_of_nodes(), list(g.edges)),
    "connected_planar": lambda g: nx.is_connected(g) and nx.check_planarity(g)[0],
    "connected_eulerian": nx.is_eulerian,  # connected with every degree even
}


@pytest.mark.parametrize("name", list(GRAPH_CLASSES))
@pytest.mark.parametrize("n", NODES)
def test_class_files_hold_each_class_once(class_dir, name, n):
    """networkx's atlas (every graph on <= 7 nodes, no geng) counts the class; every file line
    passes the test, and no two lines are isomorphic."""
    test = CLASS_TESTS[name]
    expected = sum(test(g) for g in atlas_graphs(n))
    lines = file_graphs(class_dir, name, n)
    assert len(lines) == expected > 0
    graphs = [nx.from_numpy_array(a.astype(int)) for a in lines]
    assert all(test(g) for g in graphs)
    by_hash = {}
    for g in graphs:
        by_hash.setdefault(tuple(sorted(d for _, d in g.degree)), []).append(g)
    for group in by_hash.values():
        assert not any(nx.is_isomorphic(a, b) for a, b in combinations(group, 2))


def test_perfect_test_finds_odd_holes():
    """The brute-force test itself: odd holes and odd antiholes are imperfect."""
    c5 = [(i, (i + 1) % 5) for i in range(5)]
    assert not brute_perfect(5, c5)
    c7 = [(i, (i + 1) % 7) for i in range(7)]
    assert not brute_perfect(7, c7)
    assert not brute_perfect(7, list(nx.complement(nx_graph(7, c7)).edges))  # odd antihole
    assert brute_perfect(6, [(i, (i + 1) % 6) for i in range(6)])  # even hole: bipartite
    assert brute_perfect(7, list(nx.complete_graph(7).edges))
    # on 5 nodes C5 (self-complementary) is the only imperfect graph among the atlas's 34
    assert sum(not brute_perfect(5, list(g.edges)) for g in atlas_graphs(5)) == 1


@pytest.mark.parametrize("name", ["perfect", "connected_planar", "connected_eulerian"])
def test_class_files_are_thinned_by_the_same_hash(class_dir, tmp_path, name):
    n, keep, seed = 7, 0.4, 5
    full = graph_file_path(class_dir, n, name).read_bytes().splitlines()
    summary = make_graph_file(n, tmp_path / "s.g6", keep=keep, seed=seed, jobs=2, parts=3,
                              graph_class_name=name)
    rows = np.frombuffer(b"".join(full), np.uint8).reshape(len(full), -1)
    expected = sorted(line for line, k in zip(full, keep_mask(rows, keep, seed)) if k)
    got = (tmp_path / "s.g6").read_bytes().splitlines()
    assert sorted(got) == expected and 0 < len(got) < len(full)
    assert summary["kept"] == len(got)
    # seen counts geng's graphs: with a class filter, before it (it tests the kept ones only)
    edges = file_graphs(class_dir, "connected", n).sum((1, 2)) // 2
    assert summary["seen"] == {"perfect": len(full), "connected_eulerian": len(edges),
                               "connected_planar": (edges <= 3 * n - 6).sum()}[name]
    assert summary["graph_class"] == name


def test_a_failing_or_missing_filter_is_a_loud_error(tmp_path, monkeypatch):
    import qlf.graphs as graphs
    monkeypatch.setitem(graphs.GRAPH_CLASSES, "bad", graphs.GraphClass(
        "bad", "bad{n}", "a filter given a bad option", ("-c",), nauty_filter=("pickg", "-@")))
    monkeypatch.setitem(graphs.GRAPH_CLASSES, "absent", graphs.GraphClass(
        "absent", "absent{n}", "a filter that is not installed", ("-c",),
        nauty_filter=("nosuchtoolg",)))
    with pytest.raises(RuntimeError, match="pickg"):
        make_graph_file(7, tmp_path / "bad.g6", jobs=1, graph_class_name="bad")
    with pytest.raises(FileNotFoundError, match="nosuchtoolg"):
        make_graph_file(7, tmp_path / "absent.g6", jobs=1, graph_class_name="absent")
    assert not (tmp_path / "bad.g6").exists() and not (tmp_path / "absent.g6").exists()


@pytest.mark.parametrize("name", ["connected_planar", "connected_eulerian"])
def test_filtered_lines_are_geng_lines(class_dir, name):
    """The nauty filters copy geng's lines unchanged: a subset of the connected file."""
    connected = set(graph_file_path(class_dir, 7).read_bytes().splitlines())
    assert set(graph_file_path(class_dir, 7, name).read_bytes().splitlines()) <= connected


def test_graph_file_names_round_trip(tmp_path):
    assert graph_file_name(11) == "graph11c.g6"
    assert [graph_file_name(7, c) for c in ("perfect", "connected_planar",
                                            "connected_eulerian")] == [
        "perfect7.g6", "planar7c.g6", "eulerian7c.g6"]
    for c in GRAPH_CLASSES:
        for n in (3, 11, 26):
            assert parse_graph_file_name(graph_file_name(n, c)) == (c, n)
            assert parse_graph_file_name(graph_file_name(n, c)[:-3]) == (c, n)
    for bad in ("graph11.g6", "perfectc.g6", "eulerian7.g6", "foo"):
        with pytest.raises(ValueError, match="not a graph file name"):
            parse_graph_file_name(bad)
    with pytest.raises(ValueError, match="unknown graph class"):
        graph_file_name(5, "bipartite")
    with pytest.raises(FileNotFoundError, match="--class connected_eulerian"):
        GraphFile(graph_file_path(tmp_path, 9, "connected_eulerian"), 9)


# -- the tasks as tasks ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_examples_are_relabelled_copies_of_their_file_line(class_dir, name):
    n = 6
    task, index, ex = generated(class_dir, name, n, k=60)
    assert task.graph_class == CLASS_OF[name]
    assert task.graph_path == graph_file_path(class_dir, n, CLASS_OF[name])
    assert (ex.keys == index).all()  # one file line = one equivalence class
    assert task.space_size == len(file_graphs(class_dir, CLASS_OF[name], n))
    lines = file_graphs(class_dir, CLASS_OF[name], n)[index.astype(np.int64)]
    for row, line in zip(ex.ids, lines):
        edges, _, _ = parse(task, row)
        assert edges == sorted(edges) and all(u < v for u, v in edges)
        assert nx.is_isomorphic(nx_graph(n, edges), nx.from_numpy_array(line.astype(int)))


@pytest.mark.parametrize("name", ALL)
def test_layout_loss_mask_and_determinism(class_dir, name):
    n = 7
    task, index, ex = generated(class_dir, name, n, k=200)
    assert ex.ids.shape == (200, task.seq_len) and ex.ids.dtype == np.uint8
    assert ex.ids.max() <= task.eos_id and (ex.ids[:, -1] == task.eos_id).all()
    for row, mask in zip(ex.ids, ex.loss_mask):
        _, answer, op = parse(task, row)
        assert mask.tolist() == [0] * op + [1] * (len(answer) + 2) + [0] * (
            task.seq_len - op - len(answer) - 2)
    salt = np.arange(len(index), dtype=np.uint64) * np.uint64(977)
    a, b = task.generate(index, salt), task.generate(index, salt)
    assert (a.ids == b.ids).all()
    for key in a.features:
        assert (a.features[key].labels == b.features[key].labels).all()
        assert (a.features[key].positions == b.features[key].positions).all()


def test_reference_sequence_lengths_for_eleven_nodes(tmp_path):
    lengths = {name: get_task(name, 11, tmp_path).seq_len for name in ALL}
    assert lengths == {MIS: 123, CUT: 124, PATH: 123, EULER: 168}


def test_mis_handles_the_edgeless_graph(class_dir):
    task = get_task(MIS, 5, class_dir)
    ex = task.encode(np.zeros((1, 5, 5), bool))
    assert ex.ids[0, :7].tolist() == [26, 0, 1, 2, 3, 4, 27]
    assert ex.loss_mask[0, :7].tolist() == [1] * 7 and ex.loss_mask[0, 7:].sum() == 0
    # perfect5.g6 holds it, and disconnected graphs too
    lines = file_graphs(class_dir, "perfect", 5)
    assert (lines.sum((1, 2)) == 0).sum() == 1
    assert not all(nx.is_connected(nx.from_numpy_array(a.astype(int))) for a in lines)


def test_encode_refuses_bad_input():
    apart = adjacency_of(5, [(0, 1), (2, 3), (3, 4), (2, 4)])
    for cls in (GraphMaxCut, GraphLongestPath, GraphEulerianCircuit):
        with pytest.raises(ValueError, match="connected"):
            cls(5).encode(apart)
    GraphMaximumIndependentSet(5).encode(apart)  # perfect graphs need not be connected
    with pytest.raises(ValueError, match="even"):
        GraphEulerianCircuit(5).encode(adjacency_of(5, EXAMPLE_EDGES))
    with pytest.raises(ValueError, match="symmetric"):
        GraphMaxCut(3).encode(np.array([[[0, 1, 0], [0, 0, 1], [0, 1, 0]]], bool))
    for name in (MIS, CUT, PATH):
        with pytest.raises(ValueError, match="out of range"):
            get_task(name, 17)
    get_task(EULER, 26)


def test_sixteen_nodes_against_networkx():
    """The subset programmes at their largest size, on a few graphs (chunks of 64 examples)."""
    adj = random_graphs(16, 3, 0.3, seed=1, connected=True)
    member = maximum_independent_set(adj)
    for a, m in zip(adj, member):
        g = nx.from_numpy_array(a.astype(int))
        assert not any(a[u, v] for u, v in combinations(np.flatnonzero(m), 2))
        assert m.sum() == nx.max_weight_clique(nx.complement(g), weight=None)[1]
    side_b, cut = maximum_cut(adj)
    assert not side_b[:, 0].any()
    for a, s, c in zip(adj, side_b, cut):
        g = nx.from_numpy_array(a.astype(int))
        assert nx.cut_size(g, np.flatnonzero(s)) == c
    path, nodes = longest_path(adj)
    for a, p, k in zip(adj, path, nodes):
        p = p[:k]
        assert len(set(p.tolist())) == k and all(a[u, v] for u, v in zip(p, p[1:]))


def test_task_pickles_after_opening_its_file(class_dir):
    task = get_task(CUT, 7, class_dir)
    assert task.space_size == 646 == len(file_graphs(class_dir, "connected_planar", 7))
    again = pickle.loads(pickle.dumps(task))
    index, salt = np.arange(5, dtype=np.uint64), np.arange(5, dtype=np.uint64)
    assert (again.generate(index, salt).ids == task.generate(index, salt).ids).all()
