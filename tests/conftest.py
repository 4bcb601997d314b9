"""Shared fixtures."""
import pytest

from qlf.graphs import GRAPH_CLASSES, graph_file_path, make_graph_file

GRAPH_NODES = (3, 4, 5, 6, 7)


@pytest.fixture(scope="session")
def graphs_dir(tmp_path_factory):
    """A folder with every graph of each class on 3 to 7 nodes (graph{n}c.g6, perfect{n}.g6, ...,
    made by geng and the class filters)."""
    folder = tmp_path_factory.mktemp("graphs")
    for n in GRAPH_NODES:
        for name in GRAPH_CLASSES:
            make_graph_file(n, graph_file_path(folder, n, name), jobs=1, graph_class_name=name)
    return folder
