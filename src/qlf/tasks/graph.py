"""The five graph tasks: BFS, DFS, shortest path, topological sort, Kruskal's spanning tree.

Instances are the lines of `graph{n}c.g6` (connected graphs on n nodes up to isomorphism, made by
`qlf graphs n`); the class number is the line number. Each example relabels the graph's vertices
with a random permutation drawn from its salt and draws the task's other choices from the salt
too (start node, source and target, orientation), so (index, salt) fixes the bytes.

Tokens: node v is the letter chr(65 + v) with token id v; '=' is 26 and <EOS> 27. Prompts list
the edges as (u < v) pairs in lexicographic order. Each task's traversal runs once, vectorised
over the batch (a loop over the n steps of the algorithm, never over examples), and writes the
answer and every feature label in that same pass.

Salt streams: 1 vertex relabelling, 2 start node / path source, 3 path target, 4 DAG vertex order.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import graphs
from .base import (EOS, EQ, Examples, Feature, FeatureLabels, Task, loss_mask_from, random_below,
                   random_permutations)

EQ_ID, EOS_ID = 26, 27


class GraphTask(Task):
    """Base of the graph tasks: vocabulary, the graph file, prompt assembly, validation.

    graph_class names the class of graphs the instances come from (qlf.graphs.GRAPH_CLASSES:
    connected, perfect, connected_planar, connected_eulerian), hence the graph file.
    """

    tokens = tuple(chr(65 + v) for v in range(26)) + (EQ, EOS)
    default_size, min_size, max_size, size_unit = 11, 3, 26, "nodes"
    equivalence = "the underlying unlabelled graph (one line of graph{n}c.g6)"
    features = ()
    graph_class: ClassVar[str] = "connected"

    def __init__(self, size: int | None = None, graphs_dir: str | Path = "resources/graphs"):
        super().__init__(size)
        self.graphs_dir = Path(graphs_dir)
        self._graph_file: graphs.GraphFile | None = None

    @property
    def graph_path(self) -> Path:
        """Where the g6 file of the instance space lives (graphs_dir / graph{n}c.g6, ...)."""
        return graphs.graph_file_path(self.graphs_dir, self.size, self.graph_class)

    @property
    def graph_file(self) -> graphs.GraphFile:
        """The g6 file of the instance space, opened on first use."""
        if self._graph_file is None:
            self._graph_file = graphs.GraphFile(self.graph_path, self.size)
        return self._graph_file

    @property
    def space_size(self) -> int:
        return int(self.graph_file.count)

    @property
    def n_pairs(self) -> int:
        return self.size * (self.size - 1) // 2

    def _generate(self, index, salt, features):
        adjacency = self.graph_file.adjacency(index)
        perm = random_permutations(salt, self.size, stream=1)
        return self._encode_drawn(graphs.relabel(adjacency, perm), salt, index, features)

    def _encode_drawn(self, adjacency, salt, keys, features) -> Examples:
        """Draw the task's remaining choices from `salt` and encode (subclasses)."""
        raise NotImplementedError

    # -- shared pieces ------------------------------------------------------------------------
    def _check_graphs(self, adjacency, directed=False, connected=True) -> np.ndarray:
        adj = np.asarray(adjacency)
        n = self.size
        if adj.ndim != 3 or adj.shape[1:] != (n, n):
            raise ValueError(f"{self.name}: adjacency must have shape (k, {n}, {n}), got "
                             f"{adj.shape}")
        if adj.dtype != bool and not np.isin(adj, (0, 1)).all():
            raise ValueError(f"{self.name}: adjacency entries must be 0/1 or bool")
        adj = adj.astype(bool)
        if adj[:, np.arange(n), np.arange(n)].any():
            raise ValueError(f"{self.name}: self-loops are not allowed (diagonal must be 0)")
        under = adj | adj.transpose(0, 2, 1)
        if directed and (adj & adj.transpose(0, 2, 1)).any():
            raise ValueError(f"{self.name}: a directed graph may not hold both u->v and v->u")
        if not directed and (adj != adj.transpose(0, 2, 1)).any():
            raise ValueError(f"{self.name}: an undirected adjacency must be symmetric")
        if connected and not _connected(under).all():
            raise ValueError(f"{self.name}: every graph must be connected")
        return adj

    def _check_nodes(self, nodes, what) -> np.ndarray:
        nodes = np.asarray(nodes)
        if nodes.ndim != 1 or not np.issubdtype(nodes.dtype, np.integer):
            raise ValueError(f"{self.name}: {what} must be a 1-D integer array")
        if nodes.size and (nodes.min() < 0 or nodes.max() >= self.size):
            raise ValueError(f"{self.name}: {what} must be node ids in 0..{self.size - 1}")
        return nodes.astype(np.int64)

    def _examples(self, prefix, first, second, answer, keys) -> tuple[Examples, np.ndarray]:
        """Assemble prefix tokens, the edge list, '=', the answer and EOS padding.

        first, second: (k, P) endpoints of the listed edges, compacted to the front, -1 after the
        last edge; answer: (k, A) tokens, -1 after its end. Returns the examples and op (the
        position of '=').
        """
        k, p = prefix.shape
        eq_id, eos_id = self.eq_id, self.eos_id
        n_edges = (first >= 0).sum(1)
        ids = np.full((k, self.seq_len), eos_id, dtype=np.uint8)
        ids[:, :p] = prefix
        edges = np.stack([first, second], axis=2).reshape(k, -1)
        ids[:, p:p + edges.shape[1]] = np.where(edges >= 0, edges, eos_id)
        op = p + 2 * n_edges
        rows = np.arange(k)
        ids[rows, op] = eq_id
        cols = op[:, None] + 1 + np.arange(answer.shape[1])
        ids[rows[:, None], cols] = np.where(answer >= 0, answer, eos_id)
        keys = np.zeros(k, np.uint64) if keys is None else np.asarray(keys, dtype=np.uint64)
        if keys.shape != (k,):
            raise ValueError(f"{self.name}: keys must have shape ({k},), got {keys.shape}")
        ex = Examples(ids, loss_mask_from(ids, eq_id, eos_id), keys)
        return ex, op

    def _pairs(self, adjacency) -> tuple[np.ndarray, np.ndarray]:
        """Edges of the underlying graphs as (u < v) pairs in lexicographic order, compacted:
        (k, P) u and v, -1 after the last edge."""
        i, j = np.triu_indices(self.size, 1)  # row-major: lexicographic (u, v) with u < v
        present = adjacency[:, i, j]
        order = np.argsort(~present, axis=1, kind="stable")  # present pairs first, in order
        valid = np.take_along_axis(present, order, axis=1)
        return np.where(valid, i[order], -1), np.where(valid, j[order], -1)


def _connected(adjacency) -> np.ndarray:
    """(k,) bool: is each undirected graph connected (reachability by boolean squaring)."""
    k, n, _ = adjacency.shape
    reach = adjacency | np.eye(n, dtype=bool)
    for _ in range(int(np.ceil(np.log2(max(n, 2))))):
        reach = np.matmul(reach.astype(np.uint8), reach.astype(np.uint8)) > 0
    return reach[:, 0].all(1)


def _rows_at(op, offsets, exists) -> np.ndarray:
    """int32 positions op + offsets, -1 where the row does not exist."""
    return np.where(exists, op[:, None] + offsets[None, :], -1).astype(np.int32)


def _offdiag(adjacency) -> np.ndarray:
    """(k, n(n-1)) uint8: the matrix row-major with the diagonal removed."""
    n = adjacency.shape[1]
    return adjacency[:, ~np.eye(n, dtype=bool)].astype(np.uint8)


# -- traversals (answer and hint labels from one pass) ----------------------------------------

def bfs(adjacency, source):
    """Breadth-first search from `source`, neighbours in ascending id order.

    Returns order (k, n) visiting order, parent (k, n) (the node that discovered each node;
    the source is its own parent), dist (k, n) hop distance, frontier (k, n, n) bool: row r = the
    nodes discovered but not yet visited after visiting order[:, r] (the FIFO queue contents).
    """
    k, n, _ = adjacency.shape
    rows = np.arange(k)
    order = np.zeros((k, n), np.int64)
    parent = np.full((k, n), -1, np.int64)
    dist = np.full((k, n), -1, np.int64)
    order[:, 0], parent[rows, source], dist[rows, source] = source, source, 0
    discovered = np.zeros((k, n), bool)
    discovered[rows, source] = True
    visited = np.zeros((k, n), bool)
    frontier = np.zeros((k, n, n), bool)
    tail = np.ones(k, np.int64)
    for r in range(n):
        u = order[:, r]
        visited[rows, u] = True
        new = adjacency[rows, u] & ~discovered
        b, v = np.nonzero(new)
        slot = tail[b] + np.cumsum(new, axis=1)[b, v] - 1  # enqueue in ascending id order
        order[b, slot], parent[b, v], dist[b, v] = v, u[b], dist[b, u[b]] + 1
        discovered |= new
        tail += new.sum(1)
        frontier[:, r] = discovered & ~visited
    return order, parent, dist, frontier


def dfs(adjacency, source):
    """Recursive depth-first search from `source`, smallest unvisited neighbour first (preorder).

    The next node is the smallest unvisited neighbour of the deepest node on the recursion stack
    that still has one. Returns order (k, n) and frontier (k, n, n): row r = the nodes adjacent to
    a visited node but not yet visited, after visiting order[:, r] (the unvisited nodes an
    iterative DFS holds on its stack).
    """
    k, n, _ = adjacency.shape
    rows = np.arange(k)
    stack = np.zeros((k, n), np.int64)
    stack[:, 0] = source
    depth = np.zeros(k, np.int64)
    order = np.zeros((k, n), np.int64)
    visited = np.zeros((k, n), bool)
    reached = np.zeros((k, n), bool)
    frontier = np.zeros((k, n, n), bool)
    u = np.asarray(source, np.int64)
    for r in range(n):
        if r:
            open_ = adjacency[rows[:, None], stack] & ~visited[:, None, :]  # (k, depth, n)
            has = open_.any(2) & (np.arange(n) <= depth[:, None])
            deepest = n - 1 - np.argmax(has[:, ::-1], axis=1)
            u = np.argmax(open_[rows, deepest], axis=1)  # smallest id
            depth = deepest + 1
            stack[rows, depth] = u
        order[:, r] = u
        visited[rows, u] = True
        reached |= adjacency[rows, u]
        frontier[:, r] = reached & ~visited
    return order, frontier


def kahn(adjacency):
    """Kahn's algorithm taking the smallest available id first: the lexicographically smallest
    topological order, (k, n)."""
    k, n, _ = adjacency.shape
    rows = np.arange(k)
    indegree = adjacency.sum(1).astype(np.int64)
    done = np.zeros((k, n), bool)
    order = np.zeros((k, n), np.int64)
    for r in range(n):
        available = (indegree == 0) & ~done
        if not available.any(1).all():
            raise ValueError("graph_topological_sort: the directed graph has a cycle")
        u = np.argmax(available, axis=1)
        order[:, r] = u
        done[rows, u] = True
        indegree -= adjacency[rows, u]
    return order


def kruskal(first, second, n):
    """Kruskal on unweighted edges in listed order with union-find (component labels).

    first, second: (k, P) listed edges, -1 after the last. Returns accepted (k, P) bool and
    components (k, P, n) bool: row e = the component holding edge e's endpoints after it is
    considered (only meaningful where accepted).
    """
    k, p = first.shape
    rows = np.arange(k)
    label = np.tile(np.arange(n), (k, 1))
    accepted = np.zeros((k, p), bool)
    components = np.zeros((k, p, n), bool)
    for e in range(p):
        valid = first[:, e] >= 0
        lu = label[rows, np.maximum(first[:, e], 0)]
        lv = label[rows, np.maximum(second[:, e], 0)]
        accepted[:, e] = valid & (lu != lv)
        label = np.where(accepted[:, e, None] & (label == lv[:, None]), lu[:, None], label)
        components[:, e] = label == lu[:, None]
    return accepted, components


# -- the tasks ---------------------------------------------------------------------------------

_ADJ_LIST = Feature(
    "adjacency_list", "multilabel",
    "row r: neighbours of the r-th answer node o_r as an n-vector; read at the token o_r")
_QUEUE_DOC = ("row r (r = 0..n-2): the frontier after visiting o_r, i.e. nodes discovered but not "
              "yet visited ({}); read at the token o_r")


class _Traversal(GraphTask):
    """BFS/DFS layout: start [0], edges [1..2E], '=' [2E+1], visiting order, EOS."""

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * (n - 1) + n + 3

    def _encode_drawn(self, adjacency, salt, keys, features):
        start = random_below(salt, self.size, 1, stream=2)[:, 0]
        return self._encode(adjacency, start, keys, features)

    def encode(self, adjacency, start, keys=None, features=True) -> Examples:
        """Encode given graphs (k, n, n) bool symmetric, connected, from start nodes (k,)."""
        adjacency = self._check_graphs(adjacency)
        start = self._check_nodes(start, "start")
        if start.shape != (len(adjacency),):
            raise ValueError(f"{self.name}: start must have shape ({len(adjacency)},)")
        return self._encode(adjacency, start, keys, features)

    def _encode(self, adjacency, start, keys, features):
        order, frontier = self._traverse(adjacency, start)
        first, second = self._pairs(adjacency)
        ex, op = self._examples(start[:, None], first, second, order, keys)
        if features:
            n, k = self.size, len(order)
            ex.features["adjacency_list"] = FeatureLabels(
                _rows_at(op, 1 + np.arange(n), np.ones((k, n), bool)),
                adjacency[np.arange(k)[:, None], order].astype(np.uint8), "multilabel")
            ex.features["queue"] = FeatureLabels(
                _rows_at(op, 1 + np.arange(n - 1), np.ones((k, n - 1), bool)),
                frontier[:, :n - 1].astype(np.uint8), "multilabel")
        return ex


class GraphBFS(_Traversal):
    """Breadth-first visiting order from the start node.

    Answer: BFS from the start, each node's neighbours taken in ascending id order; the answer
    is the visiting (= enqueueing) order of all n nodes.
    """

    name = "graph_breadth_first_search"
    features = (_ADJ_LIST, Feature("queue", "multilabel", _QUEUE_DOC.format("the FIFO queue")))

    def _traverse(self, adjacency, start):
        order, _, _, frontier = bfs(adjacency, start)
        return order, frontier


class GraphDFS(_Traversal):
    """Depth-first visiting order from the start node.

    Answer: the preorder of a true recursive DFS that visits the smallest unvisited neighbour
    first (networkx's dfs_preorder_nodes with sorted neighbours). The reference's stack
    simulation, which marks nodes visited when pushed, is not a DFS (its bug H14); here the
    answer and the labels come from the same traversal.
    """

    name = "graph_depth_first_search"
    features = (_ADJ_LIST, Feature(
        "queue", "multilabel", _QUEUE_DOC.format("the unvisited nodes on an iterative DFS stack")))

    def _traverse(self, adjacency, start):
        return dfs(adjacency, start)


class GraphPath(GraphTask):
    """A shortest path from source to target.

    Layout: source [0], target [1] (target != source), edges [2..2E+1], '=' [2E+2], the path
    o_0 = source .. o_{m-1} = target, EOS. Answer: BFS from the source with ascending neighbour
    order; each node's parent is the node that discovered it; the path is read back from the
    target through the parents.
    """

    name = "graph_path"
    features = (
        _ADJ_LIST,
        Feature("adjacency_matrix", "multilabel",
                "the adjacency matrix row-major without its diagonal (n(n-1) entries), the same "
                "vector in every row r = 0..m-1; read at position op + r (r = 0 is '=')"),
        Feature("queue", "multilabel",
                "row r (r = 0..m-2): the BFS layer at distance r+1 from the source, from which "
                "the next path node o_{r+1} is chosen; read at the token o_r"),
    )

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * (n - 1) + n + 4

    def _encode_drawn(self, adjacency, salt, keys, features):
        n = self.size
        source = random_below(salt, n, 1, stream=2)[:, 0]
        target = (source + 1 + random_below(salt, n - 1, 1, stream=3)[:, 0]) % n
        return self._encode(adjacency, source, target, keys, features)

    def encode(self, adjacency, source, target, keys=None, features=True) -> Examples:
        """Encode given graphs (k, n, n) bool symmetric, connected, with endpoints (k,)."""
        adjacency = self._check_graphs(adjacency)
        source = self._check_nodes(source, "source")
        target = self._check_nodes(target, "target")
        if source.shape != (len(adjacency),) or target.shape != source.shape:
            raise ValueError(f"{self.name}: source and target must have shape ({len(adjacency)},)")
        if (source == target).any():
            raise ValueError(f"{self.name}: source and target must differ")
        return self._encode(adjacency, source, target, keys, features)

    def _encode(self, adjacency, source, target, keys, features):
        n, k = self.size, len(adjacency)
        rows = np.arange(k)
        _, parent, dist, _ = bfs(adjacency, source)
        length = dist[rows, target] + 1  # nodes on the path
        back = np.zeros((k, n), np.int64)  # back[:, i] = the node i steps before the target
        back[:, 0] = target
        for i in range(1, n):
            back[:, i] = parent[rows, back[:, i - 1]]
        r = np.arange(n)
        on_path = r[None, :] < length[:, None]
        path = np.where(on_path, back[rows[:, None], np.maximum(length[:, None] - 1 - r, 0)], -1)
        first, second = self._pairs(adjacency)
        ex, op = self._examples(np.stack([source, target], 1), first, second, path, keys)
        if features:
            node = np.maximum(path, 0)
            ex.features["adjacency_list"] = FeatureLabels(
                _rows_at(op, 1 + r, on_path),
                (adjacency[rows[:, None], node] & on_path[:, :, None]).astype(np.uint8),
                "multilabel")
            ex.features["adjacency_matrix"] = FeatureLabels(
                _rows_at(op, r, on_path), _offdiag(adjacency)[:, None, :] * on_path[:, :, None],
                "multilabel")
            layer_rows = r[None, :n - 1] < length[:, None] - 1
            layers = dist[:, None, :] == (r[:n - 1, None] + 1)[None]
            ex.features["queue"] = FeatureLabels(
                _rows_at(op, 1 + r[:n - 1], layer_rows),
                (layers & layer_rows[:, :, None]).astype(np.uint8), "multilabel")
        return ex


class GraphTopologicalSort(GraphTask):
    """The lexicographically smallest topological order of a DAG.

    Layout: directed edges [0..2E-1] ('u v' means u -> v), '=' [2E], the order o_0..o_{n-1},
    EOS. The edges come in the lexicographic order of their underlying (u < v) pairs, each
    written in its orientation. Generated DAGs orient each edge of the connected graph from the
    earlier to the later node of a random vertex order. Answer: Kahn's algorithm taking the
    smallest available id first.
    """

    name = "graph_topological_sort"
    features = (
        Feature("adjacency_list", "multilabel",
                "row r: out-neighbours of the r-th answer node o_r; read at the token o_r"),
        Feature("adjacency_matrix", "multilabel",
                "the directed adjacency matrix row-major without its diagonal, the same vector "
                "in every row r = 0..n-1; read at position op + r (r = 0 is '=')"),
    )

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * (n - 1) + n + 3

    def _encode_drawn(self, adjacency, salt, keys, features):
        rank = np.argsort(random_permutations(salt, self.size, stream=4), axis=1)
        directed = adjacency & (rank[:, :, None] < rank[:, None, :])
        return self._encode(directed, keys, features)

    def encode(self, adjacency, keys=None, features=True) -> Examples:
        """Encode given DAGs (k, n, n) bool, adjacency[b, u, v] = edge u -> v, connected."""
        return self._encode(self._check_graphs(adjacency, directed=True), keys, features)

    def _encode(self, directed, keys, features):
        n, k = self.size, len(directed)
        order = kahn(directed)
        u, v = self._pairs(directed | directed.transpose(0, 2, 1))
        valid = u >= 0
        forward = directed[np.arange(k)[:, None], np.maximum(u, 0), np.maximum(v, 0)]
        tail = np.where(valid, np.where(forward, u, v), -1)
        head = np.where(valid, np.where(forward, v, u), -1)
        prefix = np.zeros((k, 0), np.int64)
        ex, op = self._examples(prefix, tail, head, order, keys)
        if features:
            every = np.ones((k, n), bool)
            ex.features["adjacency_list"] = FeatureLabels(
                _rows_at(op, 1 + np.arange(n), every),
                directed[np.arange(k)[:, None], order].astype(np.uint8), "multilabel")
            ex.features["adjacency_matrix"] = FeatureLabels(
                _rows_at(op, np.arange(n), every),
                np.repeat(_offdiag(directed)[:, None, :], n, axis=1), "multilabel")
        return ex


class GraphKruskal(GraphTask):
    """Kruskal's spanning tree of an unweighted graph.

    Layout: edges [0..2E-1], '=' [2E], the n-1 accepted edges as 'u v' token pairs, EOS. All
    edges weigh the same, so they are considered in the listed (lexicographic) order; an edge is
    accepted iff it joins two components (union-find). The answer lists the accepted edges in
    acceptance order.
    """

    name = "graph_min_spanning_tree_kruskal"
    features = (
        Feature("edge_accepted", "binary",
                "row e: 1 iff the e-th prompt edge is accepted; read at that edge's second "
                "endpoint token in the prompt (position 2e+1)"),
        Feature("component", "multilabel",
                "row j (j = 0..n-2): the n-vector of the component that holds the j-th accepted "
                "edge right after its union; read at that edge's second endpoint in the answer "
                "(position op + 2 + 2j)"),
    )

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * n + n + 1

    def _encode_drawn(self, adjacency, salt, keys, features):
        return self._encode(adjacency, keys, features)

    def encode(self, adjacency, keys=None, features=True) -> Examples:
        """Encode given graphs (k, n, n) bool symmetric, connected."""
        return self._encode(self._check_graphs(adjacency), keys, features)

    def _encode(self, adjacency, keys, features):
        n, k = self.size, len(adjacency)
        first, second = self._pairs(adjacency)
        accepted, components = kruskal(first, second, n)
        # Accepted edges to the front, in acceptance (= listing) order: n-1 of them (connected).
        pick = np.argsort(~accepted, axis=1, kind="stable")[:, :n - 1]
        rows = np.arange(k)[:, None]
        tree = np.stack([first[rows, pick], second[rows, pick]], 2).reshape(k, 2 * (n - 1))
        ex, op = self._examples(np.zeros((k, 0), np.int64), first, second, tree, keys)
        if features:
            p = self.n_pairs
            ex.features["edge_accepted"] = FeatureLabels(
                np.where(first >= 0, 1 + 2 * np.arange(p), -1).astype(np.int32),
                accepted.astype(np.uint8), "binary")
            ex.features["component"] = FeatureLabels(
                _rows_at(op, 2 + 2 * np.arange(n - 1), np.ones((k, n - 1), bool)),
                components[rows, pick].astype(np.uint8), "multilabel")
        return ex
