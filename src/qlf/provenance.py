"""What made a number: a hash of qlf's own source, the git commit of the checkout qlf runs from and
whether its tree had changes, the torch version and thread count. Records carry it whole
(`summary.provenance`); result tables carry `table_columns()` on every row, so a CSV opened months
later still says which code, torch and thread count produced it."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

# the columns every result table ends with (see table_columns)
COLUMNS = ("qlf_source_sha256", "git_commit", "git_dirty", "torch", "threads")

_STATIC: dict = {}


def provenance() -> dict:
    """{qlf_source_sha256, git_commit (None outside a checkout), git_dirty, torch, threads}."""
    import torch  # here, not at import: table scripts that never train stay light

    if not _STATIC:
        package = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
        commit = dirty = None
        try:
            git = ["git", "-C", str(package)]
            commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout.strip()
            dirty = bool(subprocess.run(git + ["status", "--porcelain", "--", "."],
                                        capture_output=True, text=True, timeout=10,
                                        check=True).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass  # not a git checkout (an installed wheel): the source hash still identifies it
        _STATIC.update(qlf_source_sha256=digest.hexdigest()[:16], git_commit=commit,
                       git_dirty=dirty, torch=torch.__version__)
    return {**_STATIC, "threads": torch.get_num_threads()}


def table_columns(made: dict | None = None) -> dict:
    """The provenance columns of a result table's rows: `made` (a record's summary.provenance,
    for tables of records) or this process's provenance (for tables this process computed)."""
    made = provenance() if made is None else made
    return {key: made.get(key) for key in COLUMNS}


def with_provenance(table, made: dict | None = None):
    """`table` (a pandas DataFrame) with the provenance columns of this process (or `made`)
    appended; columns already there (a table of records keeps each record's own) are kept."""
    out = table.copy()
    for key, value in table_columns(made).items():
        if key not in out.columns:
            out[key] = value
    return out
