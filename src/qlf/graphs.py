"""Files of connected graphs made by nauty's geng, and random access to them.

A graph file `graph{n}c.g6` holds one graph6 line per non-isomorphic connected graph on n nodes
(or a uniform sample of them). Every line for a fixed n has the same length, so line i starts at
byte i * line_length: the file is indexed by arithmetic and read with np.memmap, never loaded.

graph6 (for n <= 62): byte 0 is n + 63; then the upper triangle of the adjacency matrix in column
order (0,1),(0,2),(1,2),(0,3),(1,3),(2,3),... packed 6 bits per byte (most significant first,
zero padded), each byte + 63; then a newline.

Sampling: a graph is kept iff a seeded 64-bit hash of its graph6 line is below keep * 2**64. The
decision depends on the line alone, so geng's res/mod classes can be thinned independently and
concatenated into an exact uniform sample (a single class is not uniform: classes differ in their
edge-count distributions).
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
from pathlib import Path
from typing import Callable

import numpy as np

from .tasks.base import mix64

MIN_NODES, MAX_NODES = 1, 26  # node ids are the letters A..Z
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_BYTES = 1 << 22  # geng output is read and hashed in ~4 MB pieces


def find_geng() -> str:
    """Path of nauty's geng (`nauty-geng` on Debian/Ubuntu, `geng` elsewhere)."""
    for name in ("nauty-geng", "geng"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        "nauty's geng is not installed (looked for `nauty-geng` and `geng` on PATH); install it "
        "with `apt-get install nauty` (Debian/Ubuntu) or `conda install -c conda-forge nauty`")


def graph_file_path(graphs_dir: str | Path, n: int) -> Path:
    return Path(graphs_dir) / f"graph{n}c.g6"


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
                    parts: int | None = None) -> dict:
    """Write all connected graphs on n nodes (`geng -c -q n`), or a uniform keep-fraction of them.

    parts: number of geng res/mod classes (default 1 for n <= 8, else 64); together with n, keep
           and seed it fixes the output bytes. jobs: classes run at once (default: CPU count).
    progress: called with the running summary every few seconds and at the end; None prints a
           line to stderr every few seconds for long runs.
    Returns {n, keep, seed, parts, seen, kept, line_length, path, seconds}.
    """
    _check_nodes(n)
    keep, seed = float(keep), int(seed)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    parts = (1 if n <= 8 else 64) if parts is None else int(parts)
    jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
    if parts < 1 or jobs < 1:
        raise ValueError(f"parts and jobs must be >= 1, got parts={parts}, jobs={jobs}")
    geng, out = find_geng(), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    width = line_length(n)
    state = dict(n=n, keep=keep, seed=seed, parts=parts, seen=0, kept=0, parts_done=0,
                 line_length=width, path=str(out), seconds=0.0)
    lock, stop, start = threading.Lock(), threading.Event(), time.monotonic()

    def thin_class(res: int, part: Path) -> None:
        cmd = [geng, "-c", "-q", str(n)] + ([f"{res}/{parts}"] if parts > 1 else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with open(part, "wb") as sink:
                _thin_stream(proc.stdout, sink, n, width, keep, seed, state, lock, stop)
        finally:
            if stop.is_set():
                proc.kill()
            err = proc.communicate()[1]
        if proc.returncode != 0 and not stop.is_set():
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): "
                               f"{err.decode(errors='replace').strip()}")
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


def _thin_stream(stream, sink, n, width, keep, seed, state, lock, stop) -> None:
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
        rows = np.frombuffer(data, dtype=np.uint8, count=whole).reshape(-1, width)
        if rows[0, 0] != n + 63 or not np.all(rows[:, -1] == ord("\n")):
            raise RuntimeError(f"geng output is not graph6 lines of {width} bytes for n={n}")
        kept = rows[keep_mask(rows[:, :-1], keep, seed)]
        sink.write(kept.tobytes())
        with lock:
            state["seen"] += len(rows)
            state["kept"] += len(kept)
    if leftover and not stop.is_set():
        raise RuntimeError(f"geng output ended inside a graph6 line ({len(leftover)} stray bytes)")


def _report(progress, state, lock, start, final=False) -> dict:
    with lock:
        state["seconds"] = round(time.monotonic() - start, 3)
        snapshot = dict(state)
    if progress is not None:
        progress(snapshot)
    elif not final:
        print(f"graph{snapshot['n']}c: {snapshot['seen']:,} graphs seen, {snapshot['kept']:,} kept, "
              f"{snapshot['parts_done']}/{snapshot['parts']} geng classes done, "
              f"{snapshot['seconds']:.0f} s", file=sys.stderr, flush=True)
    return snapshot


class GraphFile:
    """Random access to a graph6 file of graphs on n nodes, by line number (memory-mapped)."""

    def __init__(self, path: str | Path, n: int):
        _check_nodes(n)
        self.path, self.n = Path(path), int(n)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"graph file {self.path} not found; make it with `qlf graphs {n} --out {self.path}` "
                f"(add `--keep F` to keep a uniform fraction F of the graphs, as needed for n >= 11)")
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
