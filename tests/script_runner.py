"""Run a workflow/scripts/*.py file in-process with a stand-in for Snakemake's `snakemake`
object (input/output/params/log as lists that also have named entries)."""
import runpy
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


class Named(list):
    """A list whose entries can also be named, like Snakemake's namedlist."""

    def __init__(self, *items, **named):
        super().__init__([*items, *named.values()])
        self.__dict__.update(named)


class Params:
    def __init__(self, **named):
        self.__dict__.update(named)


def run_script(name, monkeypatch, tmp_path, input=(), output=(), params=None):
    """Run workflow/scripts/{name}.py; `input`/`output`: a list or a dict of named paths.
    The script sends stdout/stderr to its log; monkeypatch puts them back afterwards."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    def text(v):
        return [str(p) for p in v] if isinstance(v, (list, tuple)) else str(v)

    def as_named(x):
        return (Named(**{k: text(v) for k, v in x.items()}) if isinstance(x, dict)
                else Named(*map(str, x)))

    snakemake = Params(input=as_named(input), output=as_named(output),
                       params=Params(**(params or {})),
                       log=Named(str(tmp_path / f"{name}.log")))
    runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": snakemake},
                   run_name="__main__")
