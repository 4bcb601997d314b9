"""The reference's four extra graph tasks (extra-tasks.md §7-§10): maximum independent set, max
cut, longest path, Euler circuit.

Each draws its graphs from its own class of graph file (qlf.graphs.GRAPH_CLASSES): perfect graphs
(connected or not) for the independent set, connected planar graphs for the cut, connected graphs
for the path, connected Eulerian graphs for the circuit. As in the five paper graph tasks, the
class number is the file's line number (one isomorphism class), each example relabels the
vertices with a random permutation from its salt (stream 1, the only random choice here), and the
prompt is the edge list as (u < v) pairs in lexicographic order with no prefix tokens, so '=' sits
at op = 2m for a graph with m edges.

The three NP-hard answers are exact: dynamic programmes over vertex subsets (2^n states per
example, vectorised over the batch in chunks), hence n <= 16. The answer and every feature label
come from the same computation. The features are this project's proposals (extra-tasks.md §x.5):
the reference defines no probe feature for these tasks.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import EOS, EQ, Examples, Feature, FeatureLabels
from .graph import GraphTask, _rows_at

_TABLE_BITS = 16  # lookup tables cover masks of up to 16 nodes
_CHUNK_ENTRIES = 1 << 22  # subset-table entries per chunk of examples (bounds memory)


# -- bit helpers -------------------------------------------------------------------------------

@functools.cache
def _popcount_table() -> np.ndarray:
    table = np.zeros(1 << _TABLE_BITS, np.int8)
    for b in range(_TABLE_BITS):
        table[1 << b:1 << (b + 1)] = table[:1 << b] + 1
    return table


@functools.cache
def _lowbit_table() -> np.ndarray:
    """Index of the lowest set bit of each mask (-1 for 0)."""
    masks = np.arange(1 << _TABLE_BITS)
    low = masks & -masks
    table = np.full(1 << _TABLE_BITS, -1, np.int8)
    table[1:] = np.log2(low[1:]).round().astype(np.int8)
    return table


@functools.cache
def _masks_by_size(n: int) -> tuple[np.ndarray, ...]:
    """Masks over n nodes grouped by popcount: entry c holds the masks with c bits, ascending."""
    masks = np.arange(1 << n, dtype=np.int64)
    size = _popcount_table()[masks]
    return tuple(masks[size == c] for c in range(n + 1))


@functools.cache
def _reversed_masks(bits: int) -> np.ndarray:
    """Each mask with its bit order reversed: bit i moves to bit bits-1-i."""
    m = np.arange(1 << bits, dtype=np.int64)
    return (((m[:, None] >> np.arange(bits)) & 1) << np.arange(bits - 1, -1, -1)).sum(1)


def _neighbour_masks(adjacency) -> np.ndarray:
    """(k, n) int64: bit w of [b, v] is set iff v-w is an edge of graph b."""
    n = adjacency.shape[1]
    return (adjacency.astype(np.int64) << np.arange(n, dtype=np.int64)).sum(2)


def _bits(masks, n) -> np.ndarray:
    """(..., n) bool: the bits of int masks."""
    return ((np.asarray(masks, np.int64)[..., None] >> np.arange(n)) & 1).astype(bool)


def _chunks(k: int, n: int):
    step = max(1, _CHUNK_ENTRIES >> n)
    return [slice(i, min(i + step, k)) for i in range(0, k, step)]


# -- the algorithms (vectorised over a batch of graphs) -------------------------------------------

def maximum_independent_set(adjacency) -> np.ndarray:
    """(k, n) bool: the lexicographically smallest maximum independent set of each graph
    (comparing the members as ascending id lists), as a membership vector.

    alpha[S], the independence number of the subgraph induced by the node set S, comes from
    alpha[S] = max(alpha[S - v], 1 + alpha[S - v - N(v)]) with v the lowest node of S. Then the
    nodes are decided in ascending order: v joins iff a maximum set of what is left contains it.
    """
    k, n, _ = adjacency.shape
    out = np.zeros((k, n), bool)
    nbr_all = _neighbour_masks(adjacency)
    lowbit = _lowbit_table()
    full = (1 << n) - 1
    for part in _chunks(k, n):
        nbr = nbr_all[part].T  # tables are (2^n, examples): mask sets gather whole rows
        cols = np.arange(nbr.shape[1])
        alpha = np.zeros((1 << n, nbr.shape[1]), np.int8)
        for masks in _masks_by_size(n)[1:]:
            v = lowbit[masks]
            rest = masks ^ (1 << v.astype(np.int64))
            alpha[masks] = np.maximum(alpha[rest], 1 + alpha[rest[:, None] & ~nbr[v], cols])
        left = np.full(len(cols), full, np.int64)  # nodes still allowed
        for v in range(n):
            bit = np.int64(1 << v)
            after = left & ~bit & ~nbr[v]
            take = ((left & bit) != 0) & (alpha[after, cols] + 1 == alpha[left, cols])
            out[part, v] = take
            left = np.where(take, after, left & ~bit)
    return out


def maximum_cut(adjacency) -> tuple[np.ndarray, np.ndarray]:
    """The canonical maximum cut of each graph (extra-tasks.md §8.3 [FIX]): node 0 on side A and,
    among all maximum cuts, the lexicographically smallest indicator vector (1[v in B]) for
    v = 1..n-1. Returns side_b (k, n) bool and the cut sizes (k,).

    All 2^(n-1) partitions with node 0 in A are scored: moving node h to B changes the cut by
    deg(h) - 2 |N(h) & B|.
    """
    k, n, _ = adjacency.shape
    nbr = _neighbour_masks(adjacency) >> 1  # compact masks: bit v-1 stands for node v
    deg = adjacency.sum(2).astype(np.int16)
    popcount = _popcount_table()
    m = np.arange(1 << (n - 1), dtype=np.int64)
    order_key = _reversed_masks(n - 1)
    side_b = np.zeros((k, n), bool)
    best = np.zeros(k, np.int64)
    for part in _chunks(k, n - 1):
        # (2^(n-1) partitions, examples): a block of partitions is a block of whole rows
        cut = np.zeros((1 << (n - 1), part.stop - part.start), np.int16)
        for h in range(1, n):
            half = 1 << (h - 1)  # masks below half hold nodes 1..h-1; add node h to B
            cut[half:2 * half] = (cut[:half] + deg[None, part, h]
                                  - 2 * popcount[m[:half, None] & nbr[None, part, h]])
        top = cut.max(0)
        # the indicator vector b_1..b_{n-1} read as a number with b_1 most significant
        pick = np.where(cut == top[None, :], order_key[:, None], 1 << n).argmin(0)
        side_b[part, 1:] = _bits(pick, n - 1)
        best[part] = top
    return side_b, best


def longest_path(adjacency) -> tuple[np.ndarray, np.ndarray]:
    """The lexicographically smallest node sequence among the simple paths with the most edges,
    both orientations counted (extra-tasks.md §9.3 [FIX]). Returns path (k, n), -1 after its
    end, and the number of nodes on it (k,).

    reach[S] = the set of nodes v such that some path visits exactly the nodes S and ends (hence
    could start) at v, built up by set size. The longest paths visit the largest sets S with
    reach[S] non-empty; inside each such S the smallest Hamiltonian path is built greedily (the
    smallest feasible start, then the smallest feasible neighbour: w can follow iff some path
    covers exactly the unplaced nodes of S starting at w), and the smallest over the sets wins.
    """
    k, n, _ = adjacency.shape
    nbr_all = _neighbour_masks(adjacency)
    popcount, lowbit = _popcount_table(), _lowbit_table()
    by_size = _masks_by_size(n)
    size = popcount[:1 << n].astype(np.int64)
    path = np.full((k, n), -1, np.int64)
    nodes = np.zeros(k, np.int64)
    for part in _chunks(k, n):
        # tables are (2^n, examples): a set of masks gathers whole contiguous rows
        nbr = nbr_all[part].astype(np.int32).T
        kk = nbr.shape[1]
        reach = np.zeros((1 << n, kk), np.int32)  # masks of n <= 16 nodes
        for v in range(n):
            reach[1 << v] = 1 << v
        for masks in by_size[1:n]:  # extend every path on |S| nodes by one node w
            for w in range(n):
                s_ = masks[(masks >> w) & 1 == 0]
                ok = (reach[s_] & nbr[w]) != 0
                reach[s_ | (1 << w)] |= ok.astype(np.int32) << w
        top = ((reach != 0) * size[:, None]).max(0)
        # every (node set of a longest path, example) pair; inside each set, the smallest
        # Hamiltonian path, node by node: w may come next iff w is adjacent to the last node
        # and some path covers exactly the unplaced nodes starting at w (w in reach[left])
        sets, col = np.nonzero((reach != 0) & (size[:, None] == top[None, :]))
        seq = np.full((len(col), n), -1, np.int64)
        left = sets.astype(np.int32)
        for j in range(n):
            active = j < top[col]
            options = reach[left, col]
            if j:
                options = options & nbr[np.maximum(seq[:, j - 1], 0), col]
            if (active & (options == 0)).any():
                raise AssertionError("longest_path: no feasible continuation (a bug)")
            node = lowbit[np.where(active, options, 0)]
            seq[:, j] = np.where(active, node, -1)
            left = np.where(active, left & ~(1 << np.maximum(node, 0).astype(np.int32)), left)
        # the smallest sequence per example (lexsort: the last key is the primary one)
        order = np.lexsort(tuple(seq[:, c] for c in range(n - 1, -1, -1)) + (col,))
        first = order[np.unique(col[order], return_index=True)[1]]
        path[part] = seq[first]
        nodes[part] = top
    return path, nodes


def euler_circuit(adjacency) -> tuple[np.ndarray, np.ndarray]:
    """The reference's Euler circuit (Sage's iterative Hierholzer, extra-tasks.md §10.3 [KEEP]).

    Start on the smallest node with an edge; look at the top node of the stack: if it has an
    unused edge, take the one to its smallest-id neighbour (delete it, push the neighbour),
    otherwise pop it onto the output. The output (the reverse of the walk) is the circuit.
    Returns circuit (k, E+1), -1 after its end (m+1 nodes, first = last), and m (k,).
    """
    k, n, _ = adjacency.shape
    rows = np.arange(k)
    m = adjacency.sum((1, 2)) // 2
    top_m = int(m.max(initial=0))
    unused = adjacency.copy()
    stack = np.zeros((k, top_m + 1), np.int64)
    stack[:, 0] = np.argmax(adjacency.any(2), axis=1)
    depth = np.zeros(k, np.int64)
    circuit = np.full((k, top_m + 1), -1, np.int64)
    emitted = np.zeros(k, np.int64)
    for _ in range(2 * top_m + 1):  # m pushes and m + 1 pops per graph
        active = emitted <= m
        v = stack[rows, depth]
        open_ = unused[rows, v]
        push = active & open_.any(1)
        pop = active & ~push
        w = np.argmax(open_, axis=1)
        b = np.flatnonzero(push)
        unused[b, v[b], w[b]] = unused[b, w[b], v[b]] = False
        depth[b] += 1
        stack[b, depth[b]] = w[b]
        b = np.flatnonzero(pop)
        circuit[b, emitted[b]] = v[b]
        emitted[b] += 1
        depth[b] -= 1
    return circuit, m


# -- the tasks ----------------------------------------------------------------------------------

_PROPOSAL = "Proposal (extra-tasks.md §{}), not a reference feature: "


def _adjacency_rows(adjacency, nodes, positions) -> FeatureLabels:
    """adjacency_list: row r = the neighbours of nodes[:, r] (-1: no row), read at positions."""
    k = len(nodes)
    exists = nodes >= 0
    labels = adjacency[np.arange(k)[:, None], np.maximum(nodes, 0)] & exists[:, :, None]
    return FeatureLabels(np.where(exists, positions, -1).astype(np.int32),
                         labels.astype(np.uint8), "multilabel")


def _one_row(op, labels, kind) -> FeatureLabels:
    return FeatureLabels(op[:, None].astype(np.int32), labels, kind)


class _ExtraGraphTask(GraphTask):
    """No prefix tokens, no random choice beyond the relabelling; exact answers need n <= 16."""

    min_size, max_size = 3, 16
    connected = True  # encode() requires connected graphs

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * (n - 1) + n + 2

    def _encode_drawn(self, adjacency, salt, keys, features):
        return self._encode(adjacency, keys, features)

    def encode(self, adjacency, keys=None, features=True) -> Examples:
        """Encode given graphs (k, n, n) bool symmetric adjacency matrices."""
        return self._encode(self._check(adjacency), keys, features)

    def _check(self, adjacency) -> np.ndarray:
        return self._check_graphs(adjacency, connected=self.connected)

    def _prompt(self, adjacency, answer, keys) -> tuple[Examples, np.ndarray]:
        first, second = self._pairs(adjacency)
        return self._examples(np.zeros((len(adjacency), 0), np.int64), first, second, answer,
                              keys)


class GraphMaximumIndependentSet(_ExtraGraphTask):
    """A maximum independent set of a perfect graph (extra-tasks.md §7).

    Instances: perfect graphs on n nodes, connected or not (perfect{n}.g6); the edge list may be
    empty, and then the sequence starts with '='. Layout: edges [0..2m-1], '=' [2m], the set's
    members in ascending id order, EOS padding to n(n-1) + n + 2. Answer [KEEP]: the
    lexicographically smallest maximum independent set (comparing ascending id lists), which is
    what the reference's first-largest of Sage's ordered enumeration of maximal sets is.
    """

    name = "graph_maximum_independent_set"
    graph_class = "perfect"
    equivalence = "the underlying unlabelled perfect graph (one line of perfect{n}.g6)"
    connected = False
    features = (
        Feature("mis_membership", "multilabel", _PROPOSAL.format("7.5") +
                "one row: the answer set as an n-vector; read at '=' (op), before any member "
                "is emitted"),
        Feature("adjacency_list", "multilabel", _PROPOSAL.format("7.5") +
                "row r: the neighbours of the r-th member s_r; read at the token s_r "
                "(op + 1 + r)"),
        Feature("mis_size", "regression", _PROPOSAL.format("7.5") +
                "one row: the number of members k (fixes where EOS goes); read at '=' (op)"),
    )

    def _encode(self, adjacency, keys, features):
        n = self.size
        member = maximum_independent_set(adjacency)
        size = member.sum(1)
        # members first, in ascending id order, then -1
        ranked = np.argsort(~member, axis=1, kind="stable")
        answer = np.where(np.arange(n)[None, :] < size[:, None], ranked, -1)
        ex, op = self._prompt(adjacency, answer, keys)
        if features:
            ex.features["mis_membership"] = _one_row(op, member[:, None].astype(np.uint8),
                                                     "multilabel")
            ex.features["adjacency_list"] = _adjacency_rows(
                adjacency, answer, op[:, None] + 1 + np.arange(n))
            ex.features["mis_size"] = _one_row(op, size[:, None].astype(np.int64), "regression")
        return ex


class GraphMaxCut(_ExtraGraphTask):
    """A maximum cut of a connected planar graph (extra-tasks.md §8).

    Instances: connected planar graphs (planar{n}c.g6). Vocabulary: A..Z, '|' (26), '=' (27),
    EOS (28). Layout: edges [0..2m-1], '=' [2m], side A in ascending ids, '|', side B in
    ascending ids, EOS padding to n(n-1) + n + 3. Answer [FIX of the solver-dependent cut]: node
    0 is on side A and, among all maximum cuts, the indicator vector (1[v in B]) for v = 1..n-1
    is the lexicographically smallest, i.e. low ids stay on A's side whenever an optimum allows.
    Both sides are non-empty because a connected graph's maximum cut is never empty.
    """

    name = "graph_maxcut"
    tokens = tuple(chr(65 + v) for v in range(26)) + ("|", EQ, EOS)
    graph_class = "connected_planar"
    equivalence = "the underlying unlabelled planar graph (one line of planar{n}c.g6)"
    features = (
        Feature("side_membership", "multilabel", _PROPOSAL.format("8.5") +
                "one row: 1[v in A] for every node v (node 0 always in A); read at '=' (op)"),
        Feature("cut_size", "regression", _PROPOSAL.format("8.5") +
                "one row: the number of cut edges; read at '=' (op)"),
        Feature("adjacency_list", "multilabel", _PROPOSAL.format("8.5") +
                "row r: the neighbours of the r-th emitted node; read at that node's token "
                "(op + 1 + r on side A, op + 2 + r on side B, past the '|')"),
    )

    @property
    def seq_len(self) -> int:
        n = self.size
        return n * (n - 1) + n + 3

    def _encode(self, adjacency, keys, features):
        n = self.size
        side_b, cut = maximum_cut(adjacency)
        a_size = n - side_b.sum(1)
        order = np.argsort(side_b, axis=1, kind="stable")  # side A then side B, ids ascending
        r = np.arange(n + 1)[None, :]
        shifted = np.take_along_axis(order, np.clip(r - (r > a_size[:, None]), 0, n - 1), 1)
        answer = np.where(r == a_size[:, None], 26, shifted)
        ex, op = self._prompt(adjacency, answer, keys)
        if features:
            ex.features["side_membership"] = _one_row(op, (~side_b)[:, None].astype(np.uint8),
                                                      "multilabel")
            ex.features["cut_size"] = _one_row(op, cut[:, None].astype(np.int64), "regression")
            rr = np.arange(n)[None, :]
            ex.features["adjacency_list"] = _adjacency_rows(
                adjacency, order, op[:, None] + 1 + rr + (rr >= a_size[:, None]))
        return ex


class GraphLongestPath(_ExtraGraphTask):
    """A longest simple path of a connected graph, in traversal order (extra-tasks.md §9).

    Instances: connected graphs (graph{n}c.g6, as the paper's graph tasks). Layout: edges
    [0..2m-1], '=' [2m], the path p_0 .. p_{k-1}, EOS padding to n(n-1) + n + 2. Answer [FIX of the
    reference, which emits the path's node set in Sage's vertex order, almost always A..K]: the
    lexicographically smallest node sequence among all simple paths with the most edges, both
    orientations counted (so it starts at its smaller end).
    """

    name = "graph_longest_path"
    graph_class = "connected"
    features = (
        Feature("adjacency_list", "multilabel", _PROPOSAL.format("9.5") +
                "row r: the neighbours of p_r; read at the token p_r (op + 1 + r)"),
        Feature("visited_set", "multilabel", _PROPOSAL.format("9.5") +
                "row r: the nodes p_0..p_r as an n-vector (the next node lies outside it); read "
                "at the token p_r (op + 1 + r)"),
        Feature("path_length", "regression", _PROPOSAL.format("9.5") +
                "one row: k, the number of nodes on the path (= its edges + 1, the answer "
                "tokens); read at '=' (op)"),
    )

    def _encode(self, adjacency, keys, features):
        n = self.size
        path, nodes = longest_path(adjacency)
        ex, op = self._prompt(adjacency, path, keys)
        if features:
            positions = op[:, None] + 1 + np.arange(n)
            ex.features["adjacency_list"] = _adjacency_rows(adjacency, path, positions)
            on = np.zeros(path.shape + (n,), bool)  # on[b, r, v]: v in p_0..p_r
            b, r = np.nonzero(path >= 0)
            on[b, r, path[b, r]] = True
            visited = np.logical_or.accumulate(on, axis=1) & (path >= 0)[:, :, None]
            ex.features["visited_set"] = FeatureLabels(
                np.where(path >= 0, positions, -1).astype(np.int32), visited.astype(np.uint8),
                "multilabel")
            ex.features["path_length"] = _one_row(op, nodes[:, None], "regression")
        return ex


class GraphEulerianCircuit(_ExtraGraphTask):
    """An Euler circuit of a connected Eulerian graph (extra-tasks.md §10).

    Instances: connected graphs whose every degree is even (eulerian{n}c.g6); the reference
    allows only n = 11, here any size in range. Layout: edges [0..2m-1], '=' [2m], the circuit
    c_0 .. c_m (m + 1 nodes, c_0 = c_m), EOS padding to 3 n(n-1)/2 + 3 [FIX: the reference's
    3 n(n-1)/2 + 2 leaves K_n without an EOS]. Answer [KEEP]: the pop order of the reference's
    iterative Hierholzer, smallest-id unused neighbour first (euler_circuit).
    """

    name = "graph_eulerian_circuit"
    graph_class = "connected_eulerian"
    equivalence = "the underlying unlabelled Eulerian graph (one line of eulerian{n}c.g6)"
    max_size = 26  # Hierholzer is polynomial
    features = (
        Feature("remaining_neighbors", "multilabel", _PROPOSAL.format("10.5") +
                "row r (r = 0..m-1): the neighbours w of c_r whose edge {c_r, w} is not among "
                "the circuit's edges so far (c_0c_1 .. c_{r-1}c_r), an n-vector; c_{r+1} is one "
                "of them; read at the token c_r (op + 1 + r)"),
        Feature("remaining_degree", "regression", _PROPOSAL.format("10.5") +
                "row r: the size of that set; read at the token c_r (op + 1 + r)"),
        Feature("num_edges", "regression", _PROPOSAL.format("10.5") +
                "one row: m (fixes the circuit's length and where EOS goes); read at '=' (op)"),
    )

    @property
    def seq_len(self) -> int:
        n = self.size
        return 3 * n * (n - 1) // 2 + 3

    def _check(self, adjacency) -> np.ndarray:
        adjacency = self._check_graphs(adjacency)
        if (adjacency.sum(2) % 2).any():
            raise ValueError(f"{self.name}: every degree must be even (an Eulerian graph)")
        return adjacency

    def _encode(self, adjacency, keys, features):
        n, k = self.size, len(adjacency)
        circuit, m = euler_circuit(adjacency)
        ex, op = self._prompt(adjacency, circuit, keys)
        if features:
            steps = circuit.shape[1] - 1
            left = adjacency.copy()
            remaining = np.zeros((k, steps, n), bool)
            exists = np.arange(steps)[None, :] < m[:, None]
            for r in range(steps):  # replay the circuit, deleting each edge as it is walked
                b = np.flatnonzero(exists[:, r])
                u, w = circuit[b, r], circuit[b, r + 1]
                remaining[b, r] = left[b, u]
                left[b, u, w] = left[b, w, u] = False
            positions = _rows_at(op, 1 + np.arange(steps), exists)
            ex.features["remaining_neighbors"] = FeatureLabels(
                positions, remaining.astype(np.uint8), "multilabel")
            ex.features["remaining_degree"] = FeatureLabels(
                positions, remaining.sum(2).astype(np.int64), "regression")
            ex.features["num_edges"] = _one_row(op, m[:, None].astype(np.int64), "regression")
        return ex
