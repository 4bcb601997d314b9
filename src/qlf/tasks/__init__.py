"""The ten tasks. `get_task(name, size)` is the only way the rest of qlf builds one."""
from __future__ import annotations

from pathlib import Path

from .base import EOS, EQ, Examples, Feature, FeatureLabels, KINDS, Task
from .binary import Addition, MajorityOfMajority, Multiplication
from .graph import (GraphBFS, GraphDFS, GraphKruskal, GraphPath, GraphTask,
                    GraphTopologicalSort)
from .sequence import ActivitySelection, MaximumSubarray

TASKS: dict[str, type[Task]] = {t.name: t for t in (
    Addition, Multiplication, MajorityOfMajority, MaximumSubarray, ActivitySelection,
    GraphBFS, GraphDFS, GraphPath, GraphTopologicalSort, GraphKruskal)}

DEFAULT_GRAPHS_DIR = Path("resources/graphs")


def get_task(name: str, size: int | None = None, graphs_dir: str | Path | None = None) -> Task:
    """Build task `name` at `size` (the paper's size when None).

    Graph tasks read `graphs_dir/graph{n}c.g6` (default resources/graphs under the current
    directory) when they first need it.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    cls = TASKS[name]
    if issubclass(cls, GraphTask):
        return cls(size, graphs_dir=DEFAULT_GRAPHS_DIR if graphs_dir is None else graphs_dir)
    return cls(size)


__all__ = ["TASKS", "get_task", "Task", "Feature", "FeatureLabels", "Examples", "KINDS", "EQ",
           "EOS", "GraphTask", "DEFAULT_GRAPHS_DIR"]
