"""Sweeps: the unit of training. The runs of one sweep share task, size, budget, shape and batch
size (hence steps and the schedule's shape) and differ only in learning rate and/or data seed;
qlf.train trains them as one stacked model, one member per run.

    plan (RunSpecs, qlf.compute) -> group_sweeps(specs, fuse) -> SweepSpecs -> one training job each

`fuse` names what a sweep may vary (`training.fuse` of the config, default ["lr", "seed"]); []
gives one sweep (one job) per run. A single run is a sweep of one: there is one training path.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from .compute import FUSABLE, RunSpec, _as_config, plan

# RunSpec fields that members of one sweep may differ in (model_seed follows from the others).
MEMBER_FIELDS = ("lr", "seed", "model_seed")


@dataclass(frozen=True)
class SweepSpec:
    """K >= 1 RunSpecs trained together, and the fusion rule that grouped them."""

    members: tuple[RunSpec, ...]
    fuse: tuple[str, ...] = FUSABLE

    def __post_init__(self):
        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "fuse", tuple(self.fuse))
        if not members or not all(isinstance(m, RunSpec) for m in members):
            raise ValueError("a sweep needs one or more qlf.compute.RunSpec members")
        if set(self.fuse) - set(FUSABLE):
            raise ValueError(f"fuse {list(self.fuse)}: a sweep can only fuse {FUSABLE}")
        first = members[0]
        for m in members[1:]:
            differ = [f.name for f in fields(RunSpec)
                      if f.name not in MEMBER_FIELDS and getattr(m, f.name) != getattr(first, f.name)]
            if differ:
                raise ValueError(f"sweep members {first.run_id} and {m.run_id} differ in {differ}; "
                                 f"members may differ only in {FUSABLE}")
            unfused = [k for k in FUSABLE if k not in self.fuse and getattr(m, k) != getattr(first, k)]
            if unfused:
                raise ValueError(f"sweep members {first.run_id} and {m.run_id} differ in "
                                 f"{unfused}, which this sweep does not fuse ({list(self.fuse)})")
        ids = [m.run_id for m in members]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a sweep's members must be distinct runs, got {ids}")

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def first(self) -> RunSpec:
        return self.members[0]

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.members]

    @property
    def sweep_id(self) -> str:
        """The run_id with the fused parts left out, e.g. d64_L4_H4_B64 (fuse lr and seed);
        with fuse [] it is the run_id itself."""
        s = self.first
        return (f"d{s.d_model}_L{s.n_layers}_H{s.n_heads}"
                + ("" if "lr" in self.fuse else f"_lr{s.lr!r}") + f"_B{s.batch_size}"
                + ("" if "seed" in self.fuse or not s.name_seed else f"_s{s.seed}"))

    @property
    def flops(self) -> float:
        """FLOPs actually spent by all members together."""
        return sum(m.flops for m in self.members)

    def to_dict(self) -> dict:
        return {"fuse": list(self.fuse), "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSpec":
        return cls(tuple(RunSpec.from_dict(m) for m in d["members"]), tuple(d["fuse"]))


def sweep_key(spec: RunSpec, fuse) -> tuple:
    """What a run shares with the other members of its sweep: every field but the fused ones."""
    return tuple((f.name, getattr(spec, f.name)) for f in fields(RunSpec)
                 if f.name != "model_seed" and f.name not in fuse)


def group_sweeps(specs, fuse=FUSABLE) -> list[SweepSpec]:
    """The runs grouped into sweeps, in order of first appearance (members in run order)."""
    fuse = tuple(k for k in FUSABLE if k in fuse)
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(sweep_key(spec, fuse), []).append(spec)
    return [SweepSpec(tuple(members), fuse) for members in groups.values()]


def plan_sweeps(config: dict | str | Path, tasks: list[str] | None = None) -> list[SweepSpec]:
    """Every sweep of a config (or of the listed tasks), grouped by the config's training.fuse."""
    cfg = _as_config(config)
    return group_sweeps(plan(cfg, tasks), cfg["training"]["fuse"])
