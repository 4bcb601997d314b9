"""The task registry. `get_task(name, size)` is the only way the rest of qlf builds a task.

Tasks register through the entry-point group `qlf.tasks` (name -> Task class), qlf's own the
same way as any other package's (see pyproject.toml and the README's "Add your own task"):

    [project.entry-points."qlf.tasks"]
    my_task = "my_package.my_module:MyTask"

`TASKS` is a read-only mapping over the registry, loaded once on first use. A broken entry point
(import error, not a Task subclass, name mismatch, two packages claiming one name) is a loud
error that names it. `register(cls)` adds a class in-process (tests, notebooks).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path

from .base import (EOS, EQ, KINDS, Examples, Feature, FeatureLabels, Task, loss_mask_from,
                   random_below, random_permutations)
from .graph import GraphTask

ENTRY_POINT_GROUP = "qlf.tasks"
DEFAULT_GRAPHS_DIR = Path("resources/graphs")


class RegistryError(RuntimeError):
    """A task entry point that cannot be used."""


def _check_class(name: str, cls, source: str) -> type[Task]:
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise RegistryError(f"task {name!r} ({source}) is {cls!r}, not a qlf.tasks.Task subclass")
    if getattr(cls, "name", None) != name:
        raise RegistryError(f"task {name!r} ({source}): the class's name attribute is "
                            f"{getattr(cls, 'name', None)!r}; the registered name must equal it")
    return cls


class _Registry(Mapping):
    """name -> Task class, from the `qlf.tasks` entry points (loaded on first access)."""

    def __init__(self):
        self._tasks: dict[str, type[Task]] | None = None
        self._added: dict[str, type[Task]] = {}
        self._packages: dict[str, str] = {}

    def _load(self) -> dict[str, type[Task]]:
        if self._tasks is None:
            tasks, sources = {}, {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else "unknown package"
                source = f"entry point {ep.name} = {ep.value} in {dist}"
                if ep.name in tasks:
                    if sources[ep.name][1] == ep.value:  # the same package seen twice
                        continue
                    raise RegistryError(f"task {ep.name!r} is registered twice: "
                                        f"{sources[ep.name][0]} and {source}")
                try:
                    cls = ep.load()
                except Exception as err:
                    raise RegistryError(f"cannot load task {ep.name!r} ({source}): "
                                        f"{type(err).__name__}: {err}") from err
                tasks[ep.name] = _check_class(ep.name, cls, source)
                sources[ep.name] = (source, ep.value)
                self._packages[ep.name] = dist
            if not tasks:
                raise RegistryError(f"no tasks registered under the entry-point group "
                                    f"{ENTRY_POINT_GROUP!r}: is qlf installed (pip install -e .)?")
            self._tasks = dict(sorted(tasks.items()))  # by name: independent of install order
        return {**self._tasks, **self._added}

    def package(self, name: str) -> str:
        """The distribution that registered task `name` ('in-process' for `register`)."""
        self._load()
        if name in self._added:
            return "in-process"
        return self._packages[name]

    def register(self, cls: type[Task]) -> type[Task]:
        name = getattr(cls, "name", None)
        _check_class(str(name), cls, "registered in-process")
        known = self._load().get(name)
        if known is not None and known is not cls:
            raise RegistryError(f"task {name!r} is already registered as {known!r}")
        self._added[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        if name not in self._added:
            raise KeyError(f"task {name!r} was not registered in-process")
        del self._added[name]

    def __getitem__(self, name: str) -> type[Task]:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"TASKS({', '.join(self)})"


TASKS: Mapping[str, type[Task]] = _Registry()


def register(cls: type[Task]) -> type[Task]:
    """Register a Task class in this process (usable as a class decorator); its `name` is the
    key. Installed packages register through the `qlf.tasks` entry points instead."""
    return TASKS.register(cls)


def unregister(name: str) -> None:
    """Undo `register(cls)` for the task `name`."""
    TASKS.unregister(name)


def get_task(name: str, size: int | None = None, graphs_dir: str | Path | None = None) -> Task:
    """Build task `name` at `size` (the paper's size when None).

    Graph tasks read their graph file under `graphs_dir` (default resources/graphs under the
    current directory) when they first need it.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    cls = TASKS[name]
    if issubclass(cls, GraphTask):
        return cls(size, graphs_dir=DEFAULT_GRAPHS_DIR if graphs_dir is None else graphs_dir)
    return cls(size)


# what a task in another package needs: the contract, its data classes and the helpers for
# the loss mask and the salt's random choices
__all__ = ["TASKS", "get_task", "register", "unregister", "RegistryError", "ENTRY_POINT_GROUP",
           "Task", "Feature", "FeatureLabels", "Examples", "KINDS", "EQ", "EOS", "GraphTask",
           "DEFAULT_GRAPHS_DIR", "loss_mask_from", "random_below", "random_permutations"]
