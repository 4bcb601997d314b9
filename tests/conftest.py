"""Shared fixtures."""
import pytest

from qlf.graphs import graph_file_path, make_graph_file

GRAPH_NODES = (3, 4, 5, 6, 7)


@pytest.fixture(scope="session")
def graphs_dir(tmp_path_factory):
    """A folder with every connected graph on 3 to 7 nodes (graph{n}c.g6, made by geng)."""
    folder = tmp_path_factory.mktemp("graphs")
    for n in GRAPH_NODES:
        make_graph_file(n, graph_file_path(folder, n), jobs=1)
    return folder
