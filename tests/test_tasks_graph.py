"""The five graph tasks against networkx and plain-Python simulations, and the §12 examples."""
import pickle
from collections import deque

import networkx as nx
import numpy as np
import pytest

from qlf.graphs import GraphFile, graph_file_path
from qlf.tasks import get_task
from qlf.tasks.graph import (GraphBFS, GraphDFS, GraphKruskal, GraphPath, GraphTask,
                             GraphTopologicalSort)

BFS, DFS, PATH = "graph_breadth_first_search", "graph_depth_first_search", "graph_path"
TOPO, MST = "graph_topological_sort", "graph_min_spanning_tree_kruskal"
ALL = (BFS, DFS, PATH, TOPO, MST)
EQ, EOS = 26, 27
EXAMPLE_EDGES = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]  # probes.md §12


def example_graph(directed=False):
    adj = np.zeros((1, 5, 5), bool)
    for u, v in EXAMPLE_EDGES:
        adj[0, u, v] = True
        if not directed:
            adj[0, v, u] = True
    return adj


def sets(labels):
    return [set(np.flatnonzero(row).tolist()) for row in labels]


def generated(graphs_dir, name, n, k=300, seed=0):
    task = get_task(name, n, graphs_dir)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, task.space_size, k).astype(np.uint64)
    salt = rng.integers(0, 2**63, k, dtype=np.int64).astype(np.uint64)
    return task, index, task.generate(index, salt)


def parse(name, row):
    """Read one token row back: prefix nodes, edge pairs, answer tokens, op."""
    row = [int(t) for t in row]
    op = row.index(EQ)
    n_prefix = {BFS: 1, DFS: 1, PATH: 2, TOPO: 0, MST: 0}[name]
    body = row[n_prefix:op]
    edges = list(zip(body[0::2], body[1::2]))
    answer = row[op + 1:row.index(EOS, op)]
    return row[:n_prefix], edges, answer, op


def undirected(n, edges):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return g


# -- plain-Python simulations ----------------------------------------------------------------

def neighbours(n, edges):
    nbrs = {v: set() for v in range(n)}
    for u, v in edges:
        nbrs[u].add(v)
        nbrs[v].add(u)
    return {v: sorted(s) for v, s in nbrs.items()}


def sim_bfs(n, edges, start):
    nbrs, queue, seen, order, queues = neighbours(n, edges), deque([start]), {start}, [], []
    while queue:
        u = queue.popleft()
        order.append(u)
        for v in nbrs[u]:
            if v not in seen:
                seen.add(v)
                queue.append(v)
        queues.append(set(queue))
    return order, queues[:-1]


def sim_dfs(n, edges, start):
    """Iterative DFS: pop, skip if visited, visit, push neighbours largest first."""
    nbrs, stack, visited, order, stacks = neighbours(n, edges), [start], set(), [], []
    while stack:
        u = stack.pop()
        if u in visited:
            continue
        visited.add(u)
        order.append(u)
        stack.extend(v for v in reversed(nbrs[u]) if v not in visited)
        stacks.append({v for v in stack if v not in visited})
    return order, stacks[:-1]


def sim_path(n, edges, source, target):
    nbrs, parent, queue = neighbours(n, edges), {source: None}, deque([source])
    while queue:
        u = queue.popleft()
        for v in nbrs[u]:
            if v not in parent:
                parent[v] = u
                queue.append(v)
    path = [target]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    return path[::-1]


def sim_kruskal(n, edges):
    root = list(range(n))

    def find(v):
        while root[v] != v:
            v = root[v]
        return v

    accepted, components = [], []
    for u, v in edges:
        ru, rv = find(u), find(v)
        accepted.append(int(ru != rv))
        if ru != rv:
            root[rv] = ru
            components.append({w for w in range(n) if find(w) == ru})
    return accepted, components


# -- answers against networkx ----------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 5, 7])
def test_bfs_and_dfs_answers_match_networkx(graphs_dir, n):
    for name, nx_order in ((BFS, lambda g, s: [s] + [v for _, v in nx.bfs_edges(
            g, s, sort_neighbors=sorted)]),
                           (DFS, lambda g, s: list(nx.dfs_preorder_nodes(
                               g, s, sort_neighbors=sorted)))):
        task, _, ex = generated(graphs_dir, name, n)
        for row in ex.ids:
            (start,), edges, answer, _ = parse(name, row)
            assert answer == nx_order(undirected(n, edges), start)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_path_is_a_shortest_path(graphs_dir, n):
    _, _, ex = generated(graphs_dir, PATH, n)
    for row in ex.ids:
        (source, target), edges, answer, _ = parse(PATH, row)
        g = undirected(n, edges)
        assert source != target
        assert answer[0] == source and answer[-1] == target
        assert len(answer) == nx.shortest_path_length(g, source, target) + 1
        assert all(g.has_edge(u, v) for u, v in zip(answer, answer[1:]))
        assert answer == sim_path(n, edges, source, target)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_topological_order_is_the_smallest_valid_one(graphs_dir, n):
    _, _, ex = generated(graphs_dir, TOPO, n)
    for row in ex.ids:
        _, edges, answer, _ = parse(TOPO, row)
        dag = nx.DiGraph(edges)
        dag.add_nodes_from(range(n))
        assert nx.is_directed_acyclic_graph(dag) and nx.is_weakly_connected(dag)
        assert sorted(answer) == list(range(n))
        rank = {v: i for i, v in enumerate(answer)}
        assert all(rank[u] < rank[v] for u, v in edges)
        assert answer == list(nx.lexicographical_topological_sort(dag))
        assert [tuple(sorted(e)) for e in edges] == sorted(tuple(sorted(e)) for e in edges)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_kruskal_answer_is_networkx_spanning_tree(graphs_dir, n):
    _, _, ex = generated(graphs_dir, MST, n)
    for row in ex.ids:
        _, edges, answer, _ = parse(MST, row)
        assert edges == sorted(edges) and all(u < v for u, v in edges)
        tree = list(zip(answer[0::2], answer[1::2]))
        assert len(tree) == n - 1
        assert nx.is_tree(nx.Graph(tree)) and set(nx.Graph(tree)) == set(range(n))
        g = undirected(n, edges)  # edges inserted in listed order, all weights equal
        assert tree == [tuple(sorted(e)) for e in nx.minimum_spanning_edges(g, data=False)]


# -- features against simulations -----------------------------------------------------------

def check_rows(fl, row_positions, row_labels):
    """FeatureLabels of one example against lists of expected positions and label sets."""
    r = len(row_positions)
    assert fl.positions[:r].tolist() == row_positions
    assert (fl.positions[r:] == -1).all()
    expected = [set(x) if isinstance(x, (set, list)) else x for x in row_labels]
    got = sets(fl.labels[:r]) if fl.labels.ndim == 2 else fl.labels[:r].tolist()
    assert got == expected


@pytest.mark.parametrize("n", [3, 6, 7])
def test_features_match_simulation(graphs_dir, n):
    for name in ALL:
        task, _, ex = generated(graphs_dir, name, n, k=150, seed=n)
        assert set(ex.features) == {f.name for f in task.features}
        for b, row in enumerate(ex.ids):
            prefix, edges, answer, op = parse(name, row)
            f = {key: (fl.positions[b], fl.labels[b], fl.kind)
                 for key, fl in ex.features.items()}
            nbrs = neighbours(n, edges)
            if name in (BFS, DFS):
                order, queues = (sim_bfs if name == BFS else sim_dfs)(n, edges, prefix[0])
                assert answer == order
                check_rows(_fl(f["adjacency_list"]), [op + 1 + r for r in range(n)],
                           [nbrs[v] for v in order])
                check_rows(_fl(f["queue"]), [op + 1 + r for r in range(n - 1)], queues)
            elif name == PATH:
                m = len(answer)
                dist = nx.single_source_shortest_path_length(undirected(n, edges), prefix[0])
                check_rows(_fl(f["adjacency_list"]), [op + 1 + r for r in range(m)],
                           [nbrs[v] for v in answer])
                flat = [int(v in nbrs[u]) for u in range(n) for v in range(n) if u != v]
                pos, lab, _ = f["adjacency_matrix"]
                assert pos.tolist() == [op + r for r in range(m)] + [-1] * (n - m)
                assert (lab[:m] == flat).all()
                check_rows(_fl(f["queue"]), [op + 1 + r for r in range(m - 1)],
                           [{v for v, d in dist.items() if d == r + 1} for r in range(m - 1)])
                assert all(row[p] == answer[r] for r, p in enumerate(f["queue"][0][:m - 1]))
            elif name == TOPO:
                out = {v: {w for u, w in edges if u == v} for v in range(n)}
                check_rows(_fl(f["adjacency_list"]), [op + 1 + r for r in range(n)],
                           [out[v] for v in answer])
                flat = [int(v in out[u]) for u in range(n) for v in range(n) if u != v]
                pos, lab, _ = f["adjacency_matrix"]
                assert pos.tolist() == [op + r for r in range(n)] and (lab == flat).all()
            else:
                accepted, components = sim_kruskal(n, edges)
                check_rows(_fl(f["edge_accepted"]), [2 * e + 1 for e in range(len(edges))],
                           accepted)
                check_rows(_fl(f["component"]), [op + 2 + 2 * j for j in range(n - 1)],
                           components)
                assert [row[op + 2 + 2 * j] for j in range(n - 1)] == answer[1::2]


def _fl(triple):
    from qlf.tasks.base import FeatureLabels
    pos, lab, kind = triple
    return FeatureLabels(pos, lab, kind)


def test_answer_rows_are_read_at_their_own_tokens(graphs_dir):
    for name in (BFS, DFS, PATH, TOPO):
        _, _, ex = generated(graphs_dir, name, 7, k=100)
        fl = ex.features["adjacency_list"]
        for row, pos in zip(ex.ids, fl.positions):
            _, _, answer, _ = parse(name, row)
            assert [int(row[p]) for p in pos if p >= 0] == answer


# -- worked examples (probes.md §12) ---------------------------------------------------------

def test_bfs_worked_example(graphs_dir):
    task = GraphBFS(5, graphs_dir)
    ex = task.encode(example_graph(), np.array([0]))
    ids = [0, 0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 0, 1, 2, 3, 4, 27]
    assert ex.ids[0].tolist() == ids + [27] * (task.seq_len - len(ids))
    assert task.render(ex.ids[0]) == "AABACBDCDDE=ABCDE<EOS>"
    assert ex.loss_mask[0].tolist() == [0] * 11 + [1] * 7 + [0] * (task.seq_len - 18)
    adj, queue = ex.features["adjacency_list"], ex.features["queue"]
    assert adj.positions[0].tolist() == [12, 13, 14, 15, 16]
    assert sets(adj.labels[0]) == [{1, 2}, {0, 3}, {0, 3}, {1, 2, 4}, {3}]
    assert queue.positions[0].tolist() == [12, 13, 14, 15]
    assert sets(queue.labels[0]) == [{1, 2}, {2, 3}, {3}, {4}]
    assert adj.labels.shape == (1, 5, 5) and queue.labels.shape == (1, 4, 5)


def test_dfs_example_is_a_true_dfs(graphs_dir):
    ex = GraphDFS(5, graphs_dir).encode(example_graph(), np.array([0]))
    assert ex.ids[0, 12:18].tolist() == [0, 1, 3, 2, 4, 27]  # not the reference's 0,1,3,4,2
    assert sets(ex.features["queue"].labels[0]) == [{1, 2}, {2, 3}, {2, 4}, {4}]


def test_path_worked_example(graphs_dir):
    task = GraphPath(5, graphs_dir)
    ex = task.encode(example_graph(), np.array([0]), np.array([4]))
    ids = [0, 4, 0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 0, 1, 3, 4, 27]
    assert ex.ids[0].tolist() == ids + [27] * (task.seq_len - len(ids))
    f = ex.features
    assert f["adjacency_list"].positions[0].tolist() == [13, 14, 15, 16, -1]
    assert sets(f["adjacency_list"].labels[0, :4]) == [{1, 2}, {0, 3}, {1, 2, 4}, {3}]
    assert f["adjacency_matrix"].positions[0].tolist() == [12, 13, 14, 15, -1]
    flat = [1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1]
    assert f["adjacency_matrix"].labels[0, :4].tolist() == [flat] * 4
    assert f["queue"].positions[0].tolist() == [13, 14, 15, -1]
    assert sets(f["queue"].labels[0, :3]) == [{1, 2}, {3}, {4}]


def test_topological_sort_worked_example(graphs_dir):
    task = GraphTopologicalSort(5, graphs_dir)
    ex = task.encode(example_graph(directed=True))
    ids = [0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 0, 1, 2, 3, 4, 27]
    assert ex.ids[0].tolist() == ids + [27] * (task.seq_len - len(ids))
    f = ex.features
    assert f["adjacency_list"].positions[0].tolist() == [11, 12, 13, 14, 15]
    assert sets(f["adjacency_list"].labels[0]) == [{1, 2}, {3}, {3}, {4}, set()]
    assert f["adjacency_matrix"].positions[0].tolist() == [10, 11, 12, 13, 14]
    flat = [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert f["adjacency_matrix"].labels[0].tolist() == [flat] * 5


def test_topological_sort_writes_edges_in_their_orientation(graphs_dir):
    adj = example_graph(directed=True)
    adj[0, 3, 4], adj[0, 4, 3] = False, True  # 4 -> 3
    adj[0, 0, 1], adj[0, 1, 0] = False, True  # 1 -> 0
    ex = GraphTopologicalSort(5, graphs_dir).encode(adj)
    assert ex.ids[0, :16].tolist() == [1, 0, 0, 2, 1, 3, 2, 3, 4, 3, 26, 1, 0, 2, 4, 3]


def test_kruskal_worked_example(graphs_dir):
    task = GraphKruskal(5, graphs_dir)
    ex = task.encode(example_graph())
    ids = [0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 26, 0, 1, 0, 2, 1, 3, 3, 4, 27]
    assert ex.ids[0].tolist() == ids + [27] * (task.seq_len - len(ids))
    f = ex.features
    assert f["edge_accepted"].positions[0].tolist() == [1, 3, 5, 7, 9] + [-1] * 5
    assert f["edge_accepted"].labels[0, :5].tolist() == [1, 1, 1, 0, 1]
    assert f["component"].positions[0].tolist() == [12, 14, 16, 18]
    assert sets(f["component"].labels[0]) == [{0, 1}, {0, 1, 2}, {0, 1, 2, 3}, set(range(5))]


# -- instance space, relabelling, layout -------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_examples_are_relabelled_copies_of_their_file_line(graphs_dir, name):
    n = 6
    task, index, ex = generated(graphs_dir, name, n, k=60)
    assert (ex.keys == index).all()
    lines = GraphFile(graph_file_path(graphs_dir, n), n).adjacency(index)
    for row, line in zip(ex.ids, lines):
        _, edges, _, _ = parse(name, row)
        assert nx.is_isomorphic(undirected(n, edges), nx.from_numpy_array(line.astype(int)))


@pytest.mark.parametrize("name", ALL)
def test_same_index_and_salt_same_bytes(graphs_dir, name):
    task = get_task(name, 7, graphs_dir)
    index = np.arange(0, 800, 7, dtype=np.uint64)
    salt = np.arange(len(index), dtype=np.uint64) * np.uint64(977)
    a, b = task.generate(index, salt), task.generate(index, salt)
    assert (a.ids == b.ids).all() and (a.loss_mask == b.loss_mask).all()
    for key in a.features:
        assert (a.features[key].labels == b.features[key].labels).all()
    c = task.generate(index, salt + np.uint64(1))
    assert (a.ids != c.ids).any(axis=1).mean() > 0.9
    assert task.generate(index, salt, features=False).features == {}


@pytest.mark.parametrize("name", ALL)
def test_layout_and_loss_mask(graphs_dir, name):
    n = 7
    task, _, ex = generated(graphs_dir, name, n, k=200)
    assert ex.ids.shape == (200, task.seq_len) and ex.ids.dtype == np.uint8
    assert ex.ids.max() <= EOS and (ex.ids[:, -1] == EOS).all()
    for row, mask in zip(ex.ids, ex.loss_mask):
        _, edges, answer, op = parse(name, row)
        assert mask.tolist() == [0] * op + [1] * (len(answer) + 2) + [0] * (
            task.seq_len - op - len(answer) - 2)
        assert (row[op + len(answer) + 1:] == EOS).all()
        assert all(t < n for t in row[:op])


def test_reference_sequence_lengths_for_eleven_nodes(tmp_path):
    lengths = {name: get_task(name, 11, tmp_path).seq_len for name in ALL}
    assert lengths == {BFS: 124, DFS: 124, PATH: 125, TOPO: 124, MST: 133}


def test_random_choices_cover_their_ranges(graphs_dir):
    n, k = 5, 3000
    index = np.zeros(k, np.uint64)
    salt = np.arange(k, dtype=np.uint64)
    starts = get_task(BFS, n, graphs_dir).generate(index, salt, features=False).ids[:, 0]
    assert np.bincount(starts, minlength=n).min() > k / n * 0.8
    path = get_task(PATH, n, graphs_dir).generate(index, salt, features=False).ids
    pairs = path[:, 0].astype(int) * n + path[:, 1]
    counts = np.bincount(pairs, minlength=n * n).reshape(n, n)
    assert (np.diag(counts) == 0).all()
    assert counts[~np.eye(n, dtype=bool)].min() > k / (n * (n - 1)) * 0.6
    # the complete graph K5 oriented by a random vertex order: all 5! orders are reachable
    topo = get_task(TOPO, n, graphs_dir)
    edges = topo.graph_file.adjacency(np.arange(topo.space_size)).sum((1, 2)) // 2
    complete = np.full(k, np.flatnonzero(edges == 10)[0], np.uint64)
    ids = topo.generate(complete, salt, features=False).ids
    answers = {tuple(parse(TOPO, r)[2]) for r in ids}
    assert len(answers) == 120


def test_space_is_the_graph_file(graphs_dir, tmp_path):
    assert get_task(BFS, 6, graphs_dir).space_size == 112
    task = get_task(DFS, 9, tmp_path)  # constructing does not need the file
    with pytest.raises(FileNotFoundError, match="qlf graphs 9"):
        task.space_size
    with pytest.raises(ValueError):
        get_task(BFS, 2, graphs_dir)
    with pytest.raises(ValueError):
        get_task(BFS, 27, graphs_dir)


def test_task_pickles_after_opening_its_file(graphs_dir):
    task = get_task(PATH, 7, graphs_dir)
    assert task.space_size == 853
    again = pickle.loads(pickle.dumps(task))
    index, salt = np.arange(5, dtype=np.uint64), np.arange(5, dtype=np.uint64)
    assert (again.generate(index, salt).ids == task.generate(index, salt).ids).all()


def test_encode_refuses_bad_input(graphs_dir):
    bfs, path = GraphBFS(5, graphs_dir), GraphPath(5, graphs_dir)
    topo, mst = GraphTopologicalSort(5, graphs_dir), GraphKruskal(5, graphs_dir)
    good = example_graph()
    one_way = example_graph(directed=True)
    apart = good.copy()
    apart[0, 3, 4] = apart[0, 4, 3] = False
    loop = good.copy()
    loop[0, 2, 2] = True
    cycle = one_way.copy()
    cycle[0, 3, 4], cycle[0, 4, 0], cycle[0, 0, 4] = True, True, False
    cycle[0, 0, 1], cycle[0, 1, 0] = False, True
    cycle[0, 1, 3], cycle[0, 3, 1] = False, True  # 0->2->3->1->0
    both = one_way.copy()
    both[0, 1, 0] = True
    cases = [
        (lambda: bfs.encode(one_way, np.array([0])), "symmetric"),
        (lambda: bfs.encode(apart, np.array([0])), "connected"),
        (lambda: bfs.encode(loop, np.array([0])), "self-loop"),
        (lambda: bfs.encode(good, np.array([5])), "node ids"),
        (lambda: bfs.encode(good, np.array([0, 1])), "shape"),
        (lambda: bfs.encode(good[:, :4, :4], np.array([0])), "shape"),
        (lambda: path.encode(good, np.array([2]), np.array([2])), "differ"),
        (lambda: topo.encode(cycle), "cycle"),
        (lambda: topo.encode(both), "both"),
        (lambda: mst.encode(apart), "connected"),
        (lambda: bfs.encode(good, np.array([0]), keys=np.array([1, 2])), "keys"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_encode_matches_generate(graphs_dir):
    """The explicit encoder and the generator share one code path."""
    task = GraphBFS(6, graphs_dir)
    index = np.arange(40, dtype=np.uint64)
    ex = task.generate(index, index * np.uint64(31))
    adj = np.zeros((40, 6, 6), bool)
    for b, row in enumerate(ex.ids):
        _, edges, _, _ = parse(BFS, row)
        for u, v in edges:
            adj[b, u, v] = adj[b, v, u] = True
    again = task.encode(adj, ex.ids[:, 0].astype(np.int64), keys=index)
    assert (again.ids == ex.ids).all() and (again.keys == index).all()
    for key in ex.features:
        assert (again.features[key].positions == ex.features[key].positions).all()
        assert (again.features[key].labels == ex.features[key].labels).all()


def test_feature_declarations():
    kinds = {cls.name: {f.name: f.kind for f in cls.features}
             for cls in (GraphBFS, GraphDFS, GraphPath, GraphTopologicalSort, GraphKruskal)}
    assert kinds == {
        BFS: {"adjacency_list": "multilabel", "queue": "multilabel"},
        DFS: {"adjacency_list": "multilabel", "queue": "multilabel"},
        PATH: {"adjacency_list": "multilabel", "adjacency_matrix": "multilabel",
               "queue": "multilabel"},
        TOPO: {"adjacency_list": "multilabel", "adjacency_matrix": "multilabel"},
        MST: {"edge_accepted": "binary", "component": "multilabel"},
    }
    assert issubclass(GraphKruskal, GraphTask)
