"""Files of graphs made by nauty's geng, and random access to them.

A graph file holds one graph6 line per non-isomorphic graph of one class on n nodes (or a uniform
sample of them). The classes (GRAPH_CLASSES) and their files:

    connected            graph{n}c.g6     geng -c
    perfect              perfect{n}.g6    geng -P (connected or not, edgeless graph included)
    connected_planar     planar{n}c.g6    geng -c, n-1..3n-6 edges, then nauty's planarg
    connected_eulerian   eulerian{n}c.g6  geng -c, then nauty's `pickg -E` (even degrees)

geng's own flags restrict the class where they exist; otherwise a nauty filter program (shipped
next to geng) drops the other graphs, copying the accepted lines unchanged. Every line for a
fixed n has the same length, so line i starts at byte i * line_length: the file is indexed by
arithmetic and read with np.memmap, never loaded.

graph6 (for n <= 62): byte 0 is n + 63; then the upper triangle of the adjacency matrix in column
order (0,1),(0,2),(1,2),(0,3),(1,3),(2,3),... packed 6 bits per byte (most significant first,
zero padded), each byte + 63; then a newline.

Sampling: a graph is kept iff a seeded 64-bit hash of its graph6 line is below keep * 2**64. The
decision depends on the line alone, so geng's res/mod classes can be thinned independently and
concatenated into an exact uniform sample (a single class is not uniform: classes differ in their
edge-count distributions). Thinning and the class test are both per-line decisions, so a
thinned file is a uniform sample of the class.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .tasks.base import mix64

MIN_NODES, MAX_NODES = 1, 26  # node ids are the letters A..Z
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_BYTES = 1 << 22  # geng output is read and hashed in ~4 MB pieces


GENG_WHEEL = "passagemath-nauty"  # the PyPI wheel (the pipeline extra) that ships geng
GENG_NAMES = ("geng", "nauty-geng")  # nauty's name, and Debian/Ubuntu's


def find_geng() -> str:
    """Path of nauty's geng, looked for in this order: the `QLF_GENG` environment variable (a
    path; an error if it is set and not an executable file), the executable shipped in the
    passagemath-nauty wheel, then `geng` or `nauty-geng` on PATH."""
    override = os.environ.get("QLF_GENG", "")
    if override:  # set and empty counts as unset
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"QLF_GENG={override!r} is not an executable file; point it at "
                                    f"nauty's geng or unset it")
        return str(path)
    wheel = wheel_geng()
    if wheel is not None:
        return wheel
    for name in GENG_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        f"nauty's geng not found: QLF_GENG is not set, the {GENG_WHEEL} wheel is not installed "
        f"(`pip install {GENG_WHEEL}`, or the package's `pipeline` extra), and neither "
        f"{' nor '.join(f'`{n}`' for n in GENG_NAMES)} is on PATH (`apt-get install nauty` on "
        f"Debian/Ubuntu, `conda install -c conda-forge nauty`)")


def wheel_geng() -> str | None:
    """The geng executable of the installed passagemath-nauty wheel (`sage_wheels/bin/geng` in
    its site-packages), found through the wheel's file list; None if the wheel is not installed
    or ships no geng; an error if its geng is missing or not executable (a broken install)."""
    from importlib import metadata

    try:
        files = metadata.distribution(GENG_WHEEL).files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.parts[-2:] == ("bin", "geng"):
            path = Path(file.locate())
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise FileNotFoundError(f"{GENG_WHEEL} lists {path}, which is not an executable "
                                        f"file; reinstall it (`pip install --force-reinstall "
                                        f"{GENG_WHEEL}`)")
            return str(path)
    return None


def _nauty_tool(name: str) -> str:
    """A nauty program shipped next to geng (`planarg` beside `geng`, `nauty-planarg` beside
    Debian's `nauty-geng`)."""
    geng = Path(find_geng())
    tool = geng.with_name(geng.name.replace("geng", name))
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        raise FileNotFoundError(f"nauty's {name} not found: expected it next to geng, at {tool} "
                                f"(it ships with the {GENG_WHEEL} wheel and Debian's nauty)")
    return str(tool)


@dataclass(frozen=True)
class GraphClass:
    """Which graphs a graph file holds and how geng makes them.

    stem: file name without `.g6`, with {n}; geng_flags: geng's own restrictions; edges: n ->
    (min, max) edge counts for geng (a necessary condition that prunes its search), or None;
    nauty_filter: a nauty program and its arguments that reads graph6 lines on stdin and writes
    the accepted ones unchanged (the class test where geng has no flag for it), or None.
    """

    name: str
    stem: str
    doc: str
    geng_flags: tuple[str, ...]
    edges: Callable[[int], tuple[int, int]] | None = None
    nauty_filter: tuple[str, ...] | None = None

    def file_name(self, n: int) -> str:
        return self.stem.format(n=n) + ".g6"

    def commands(self, n: int, res: int = 0, parts: int = 1) -> list[list[str]]:
        """The geng command for class `res` of `parts`, then the filter command if any."""
        geng = [find_geng(), *self.geng_flags, "-q", str(n)]
        if self.edges is not None:
            geng.append("{}:{}".format(*self.edges(n)))
        if parts > 1:
            geng.append(f"{res}/{parts}")
        if self.nauty_filter is None:
            return [geng]
        return [geng, [_nauty_tool(self.nauty_filter[0]), *self.nauty_filter[1:]]]


GRAPH_CLASSES = {c.name: c for c in (
    GraphClass("connected", "graph{n}c", "connected graphs", ("-c",)),
    GraphClass("perfect", "perfect{n}", "perfect graphs, connected or not", ("-P",)),
    # Euler's formula: a simple planar graph on n >= 3 nodes has at most 3n - 6 edges.
    GraphClass("connected_planar", "planar{n}c", "connected planar graphs", ("-c",),
               edges=lambda n: (n - 1, max(n - 1, 3 * n - 6)), nauty_filter=("planarg", "-q")),
    GraphClass("connected_eulerian", "eulerian{n}c",
               "connected Eulerian graphs (every degree even)", ("-c",),
               nauty_filter=("pickg", "-q", "-E")),
)}


def graph_class(name: str) -> GraphClass:
    if name not in GRAPH_CLASSES:
        raise ValueError(f"unknown graph class {name!r}; known: {', '.join(GRAPH_CLASSES)}")
    return GRAPH_CLASSES[name]


def graph_file_name(n: int, graph_class_name: str = "connected") -> str:
    """`graph{n}c.g6`, `perfect{n}.g6`, ...: the file of a class on n nodes."""
    _check_nodes(n)
    return graph_class(graph_class_name).file_name(n)


def graph_file_path(graphs_dir: str | Path, n: int, graph_class_name: str = "connected") -> Path:
    return Path(graphs_dir) / graph_file_name(n, graph_class_name)


def parse_graph_file_name(name: str) -> tuple[str, int]:
    """(class, n) of a graph file name or stem (`perfect7.g6` -> ("perfect", 7))."""
    stem = name[:-3] if name.endswith(".g6") else name
    for c in GRAPH_CLASSES.values():
        head, tail = c.stem.split("{n}")
        digits = stem[len(head):len(stem) - len(tail)]
        if stem.startswith(head) and stem.endswith(tail) and digits.isdigit():
            return c.name, int(digits)
    raise ValueError(f"{name!r} is not a graph file name; known patterns: "
                     f"{', '.join(c.stem + '.g6' for c in GRAPH_CLASSES.values())}")


def line_length(n: int) -> int:
    """Bytes per graph6 line for n nodes, newline included."""
    _check_nodes(n)
    return 1 + _body_bytes(n) + 1


def _body_bytes(n: int) -> int:
    return -(-(n * (n - 1) // 2) // 6)  # ceil(pairs / 6)


def _check_nodes(n: int) -> None:
    if not MIN_NODES <= n <= MAX_NODES:
        raise ValueError(f"number of nodes {n} out of range; allowed {MIN_NODES}..{MAX_NODES}")


def hash_lines(rows: np.ndarray, seed: int) -> np.ndarray:
    """Seeded 64-bit hash of each row of a (k, m) uint8 array of graph6 bytes (no newline).

    The bytes are folded into little-endian 64-bit words, each mixed into the running hash.
    """
    k, m = rows.shape
    words = -(-m // 8)
    padded = np.zeros((k, words * 8), dtype=np.uint8)
    padded[:, :m] = rows
    folded = padded.view("<u8")
    h = np.full(k, mix64(np.uint64(seed) ^ _GOLDEN), dtype=np.uint64)
    for w in range(words):
        h = mix64((h ^ folded[:, w]) + _GOLDEN)
    return h


def keep_mask(rows: np.ndarray, keep: float, seed: int) -> np.ndarray:
    """Which graph6 rows a keep-fraction sample with this seed keeps."""
    if keep >= 1.0:
        return np.ones(len(rows), dtype=bool)
    return hash_lines(rows, seed) < np.uint64(int(keep * 2.0**64))


def make_graph_file(n: int, out: str | Path, keep: float = 1.0, seed: int = 0,
                    jobs: int | None = None, progress: Callable[[dict], None] | None = None,
                    parts: int | None = None, graph_class_name: str = "connected") -> dict:
    """Write all graphs of a class on n nodes (default connected: `geng -c -q n`), or a uniform
    keep-fraction of them (GRAPH_CLASSES says how each class is made).

    parts: number of geng res/mod classes (default 1 for n <= 8, else 64); together with n, keep
           and seed it fixes the output bytes. jobs: classes run at once (default: CPU count).
    progress: called with the running summary every few seconds and at the end; None prints a
           line to stderr every few seconds for long runs.
    Returns {n, graph_class, keep, seed, parts, seen, kept, line_length, path, seconds}; seen
    counts geng's graphs (for a class with a filter: before the filter, which only tests the
    graphs that the thinning keeps).
    """
    _check_nodes(n)
    gclass = graph_class(graph_class_name)
    keep, seed = float(keep), int(seed)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    parts = (1 if n <= 8 else 64) if parts is None else int(parts)
    jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
    if parts < 1 or jobs < 1:
        raise ValueError(f"parts and jobs must be >= 1, got parts={parts}, jobs={jobs}")
    gclass.commands(n)  # locate geng and the filter now: a missing program fails before any work
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    width = line_length(n)
    state = dict(n=n, graph_class=gclass.name, keep=keep, seed=seed, parts=parts, seen=0,
                 kept=0, parts_done=0, line_length=width, path=str(out), seconds=0.0)
    lock, stop, start = threading.Lock(), threading.Event(), time.monotonic()

    def thin_class(res: int, part: Path) -> None:
        # geng -> thinned here -> the class filter (if any) -> part: thinning first means the
        # filter only tests the kept graphs (both are per-line decisions, so the order does
        # not change the output)
        cmds = gclass.commands(n, res, parts)
        # stderr to temporary files: a full stderr pipe would block a program nobody reads
        errs = [tempfile.TemporaryFile() for _ in cmds]
        procs, feed_error = [], []
        try:
            procs.append(subprocess.Popen(cmds[0], stdout=subprocess.PIPE, stderr=errs[0]))
            with open(part, "wb") as sink:
                if len(cmds) == 1:
                    _thin_stream(procs[0].stdout, sink, n, width, keep, seed, state, lock, stop)
                else:
                    procs.append(subprocess.Popen(cmds[1], stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE, stderr=errs[1]))

                    def feed():
                        try:
                            _thin_stream(procs[0].stdout, procs[1].stdin, n, width, keep, seed,
                                         state, lock, stop, count_kept=False)
                        except BaseException as err:  # re-raised below, after the filter's
                            feed_error.append(err)
                        finally:
                            try:
                                procs[1].stdin.close()
                            except BrokenPipeError:  # the filter died: its error is reported
                                pass

                    feeder = threading.Thread(target=feed, daemon=True)
                    feeder.start()
                    _copy_lines(procs[1].stdout, sink, width, state, lock)
                    feeder.join()
        finally:
            # a broken pipe to the filter means the filter died: its own error says why
            own_error = feed_error and not isinstance(feed_error[0], BrokenPipeError)
            for proc in procs:
                if stop.is_set() or own_error:
                    proc.kill()
                proc.wait()
        if own_error:
            raise feed_error[0]
        # the filter first: when it dies, geng's broken pipe is only the consequence
        for cmd, proc, err in reversed(list(zip(cmds, procs, errs))):
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
            err.close()
            if proc.returncode != 0 and not stop.is_set():
                raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {message}")
        if feed_error:
            raise feed_error[0]
        with lock:
            state["parts_done"] += 1

    tmpdir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        part_files = [tmpdir / f"part{res:05d}" for res in range(parts)]
        with ThreadPoolExecutor(max_workers=min(jobs, parts)) as pool:
            futures = [pool.submit(thin_class, res, part) for res, part in enumerate(part_files)]
            last = time.monotonic()
            try:
                while not all(f.done() for f in futures):
                    time.sleep(0.05)
                    if time.monotonic() - last >= 5.0:
                        last = time.monotonic()
                        _report(progress, state, lock, start)
                for f in futures:
                    f.result()
            except BaseException:
                stop.set()
                raise
        # Concatenate the classes in res order (deterministic bytes), then rename atomically.
        joined = tmpdir / "joined"
        if parts == 1:
            part_files[0].rename(joined)
        else:
            with open(joined, "wb") as sink:
                for part in part_files:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, sink, 1 << 24)
                    part.unlink()
        os.replace(joined, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    summary = _report(progress, state, lock, start, final=True)
    summary.pop("parts_done")
    return summary


def _thin_stream(stream, sink, n, width, keep, seed, state, lock, stop,
                 count_kept=True) -> None:
    """Read fixed-width graph6 lines from `stream`, write the kept ones to `sink`."""
    chunk = max(1, _CHUNK_BYTES // width) * width
    leftover = b""
    while not stop.is_set():
        data = stream.read(chunk)
        if not data:
            break
        data = leftover + data
        whole = len(data) // width * width
        leftover = data[whole:]
        if not whole:
            continue
        rows = np.frombuffer(data, dtype=np.uint8, count=whole).reshape(-1, width)
        if rows[0, 0] != n + 63 or not np.all(rows[:, -1] == ord("\n")):
            raise RuntimeError(f"geng output is not graph6 lines of {width} bytes for n={n}")
        kept = rows[keep_mask(rows[:, :-1], keep, seed)]
        sink.write(kept.tobytes())
        with lock:
            state["seen"] += len(rows)
            state["kept"] += len(kept) if count_kept else 0
    if leftover and not stop.is_set():
        raise RuntimeError(f"geng output ended inside a graph6 line ({len(leftover)} stray bytes)")


def _copy_lines(stream, sink, width, state, lock) -> None:
    """Copy a class filter's output (whole graph6 lines of `width` bytes) to `sink`."""
    total = 0
    while True:
        data = stream.read(_CHUNK_BYTES)
        if not data:
            break
        sink.write(data)
        with lock:
            state["kept"] += (total + len(data)) // width - total // width
        total += len(data)
    if total % width:
        raise RuntimeError(f"a graph class filter wrote {total} bytes, not whole graph6 lines "
                           f"of {width} bytes")


def _report(progress, state, lock, start, final=False) -> dict:
    with lock:
        state["seconds"] = round(time.monotonic() - start, 3)
        snapshot = dict(state)
    if progress is not None:
        progress(snapshot)
    elif not final:
        print(f"{Path(snapshot['path']).name}: {snapshot['seen']:,} graphs seen, "
              f"{snapshot['kept']:,} kept, "
              f"{snapshot['parts_done']}/{snapshot['parts']} geng classes done, "
              f"{snapshot['seconds']:.0f} s", file=sys.stderr, flush=True)
    return snapshot


class GraphFile:
    """Random access to a graph6 file of graphs on n nodes, by line number (memory-mapped)."""

    def __init__(self, path: str | Path, n: int):
        _check_nodes(n)
        self.path, self.n = Path(path), int(n)
        if not self.path.is_file():
            try:
                name = parse_graph_file_name(self.path.name)[0]
            except ValueError:
                name = "connected"
            option = "" if name == "connected" else f" --class {name}"
            raise FileNotFoundError(
                f"graph file {self.path} not found; make it with `qlf graphs {n}{option} --out "
                f"{self.path}` (add `--keep F` to keep a uniform fraction F of the graphs, as "
                f"needed for n >= 11)")
        self.line_length = line_length(n)
        size = self.path.stat().st_size
        if size == 0:
            raise ValueError(f"graph file {self.path} is empty; remake it (with a larger keep)")
        with open(self.path, "rb") as f:
            first = f.read(1)[0]
        if first - 63 != n:
            raise ValueError(f"{self.path} holds graphs on {first - 63} nodes, not {n} "
                             f"(first graph6 byte {first}); use the file made for n={n}")
        if size % self.line_length:
            raise ValueError(f"{self.path}: size {size} is not a multiple of the graph6 line "
                             f"length {self.line_length} for n={n}; the file is truncated or not "
                             f"made by `qlf graphs`")
        self.count = size // self.line_length
        self._lines = np.memmap(self.path, dtype=np.uint8, mode="r",
                                shape=(self.count, self.line_length))
        if self._lines[-1, -1] != ord("\n"):
            raise ValueError(f"{self.path}: the last line does not end in a newline")
        self._i, self._j = _graph6_pairs(n)

    def __reduce__(self):  # pickle by path (a memmap would pickle the whole file)
        return GraphFile, (self.path, self.n)

    def __len__(self) -> int:
        return self.count

    def lines(self, line_indices) -> np.ndarray:
        """(k, line_length - 1) uint8 graph6 bytes of the given lines (newline dropped)."""
        idx = np.asarray(line_indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise ValueError("line_indices must be a 1-D array of integers")
        idx = idx.astype(np.int64) if idx.dtype != np.uint64 else idx
        if idx.size and (idx.min() < 0 or idx.max() >= self.count):
            raise ValueError(f"line index out of range; {self.path} has lines 0..{self.count - 1}")
        return np.asarray(self._lines[idx, :-1])

    def adjacency(self, line_indices) -> np.ndarray:
        """(k, n, n) bool symmetric adjacency matrices of the given lines."""
        rows = self.lines(line_indices)
        six = rows[:, 1:].astype(np.int16) - 63
        if six.size and (six.min() < 0 or six.max() > 63):
            raise ValueError(f"{self.path}: bytes outside graph6's range 63..126")
        bits = (six[:, :, None] >> np.arange(5, -1, -1)) & 1  # most significant bit first
        bits = bits.reshape(len(rows), -1)[:, :len(self._i)].astype(bool)
        adj = np.zeros((len(rows), self.n, self.n), dtype=bool)
        adj[:, self._i, self._j] = bits
        adj[:, self._j, self._i] = bits
        return adj


def _graph6_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of graph6's bit order: column by column over the upper triangle."""
    j, i = np.nonzero(np.tril(np.ones((n, n), dtype=bool), -1))  # row-major lower = column upper
    return i, j


def relabel(adjacency: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Rename node v to perm[b, v] in each graph b: new[b, perm[u], perm[v]] = old[b, u, v]."""
    k, n, _ = adjacency.shape
    out = np.zeros_like(adjacency)
    out[np.arange(k)[:, None, None], perm[:, :, None], perm[:, None, :]] = adjacency
    return out
