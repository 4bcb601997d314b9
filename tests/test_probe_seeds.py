"""Quiet/loud verdicts across training seeds (qlf.probes.verdicts_across_seeds)."""
import math

import numpy as np
import pandas as pd
import pytest

from qlf.probes import SEED_VERDICT_RULE, verdicts_across_seeds


def seed_rows(verdicts, onsets, effects, feature="carry", group="middle"):
    return pd.DataFrame([dict(task="addition", feature=feature, group=group, verdict=v,
                              onset_budget=o, transition_budget=1e12, pre_budget=1e11,
                              effect_pre_transition=e, init_spread=0.01 * (s + 1), train_seed=s)
                         for s, (v, o, e) in enumerate(zip(verdicts, onsets, effects))])


def test_quiet_only_when_every_seed_is_quiet():
    table = pd.concat([
        seed_rows(["quiet"] * 3, [1e10, 1e11, 1e10], [0.3, 0.1, 0.2]),
        seed_rows(["quiet", "loud", "quiet"], [1e10, 1e12, 1e11], [0.3, -0.01, 0.2],
                  feature="retrieve_first_op"),
        seed_rows(["loud"] * 3, [1e12, 1e12, 1e13], [0.0, 0.01, -0.02], feature="sum"),
        seed_rows(["neither"] * 3, [math.nan] * 3, [0.0, 0.0, 0.0], feature="noise")])
    out = verdicts_across_seeds(table.sample(frac=1, random_state=0)).set_index("feature")
    assert out.verdict.to_dict() == {"carry": "quiet", "retrieve_first_op": "mixed",
                                     "sum": "loud", "noise": "neither"}
    carry = out.loc["carry"]
    assert (carry.n_seeds, carry.n_quiet) == (3, 3)
    assert carry.seed_verdicts == "s0:quiet s1:quiet s2:quiet"
    assert carry.onset_budget == 1e11 and carry.onset_budget_min == 1e10  # latest seed's onset
    assert carry.effect_pre_transition == pytest.approx(0.2)
    assert (carry.effect_pre_transition_min, carry.effect_pre_transition_max) == (0.1, 0.3)
    assert carry.init_spread == pytest.approx(0.03) and carry.rule == SEED_VERDICT_RULE
    mixed = out.loc["retrieve_first_op"]
    assert mixed.n_quiet == 2 and mixed.seed_verdicts == "s0:quiet s1:loud s2:quiet"
    assert np.isnan(out.loc["noise"].onset_budget) and out.loc["noise"].seed_onsets == \
        "s0:- s1:- s2:-"


def test_a_seed_without_an_onset_leaves_the_common_onset_open():
    out = verdicts_across_seeds(seed_rows(["quiet", "neither"], [1e10, math.nan], [0.2, 0.0]))
    row = out.iloc[0]
    assert row.verdict == "mixed" and np.isnan(row.onset_budget) and row.onset_budget_min == 1e10
    assert row.seed_onsets == "s0:1e+10 s1:-"


def test_one_seed_is_that_seeds_verdict():
    for verdict in ("quiet", "loud", "neither", "no transition"):
        out = verdicts_across_seeds(seed_rows([verdict], [1e10], [0.2]))
        assert out.verdict.tolist() == [verdict] and out.n_seeds.tolist() == [1]


def test_bad_input_is_named():
    table = seed_rows(["quiet", "quiet"], [1e10, 1e10], [0.1, 0.1])
    with pytest.raises(ValueError, match="twice"):
        verdicts_across_seeds(table.assign(train_seed=0))
    with pytest.raises(ValueError, match="train_seed"):
        verdicts_across_seeds(table.drop(columns="train_seed"))
    with pytest.raises(ValueError, match="no per-seed verdicts"):
        verdicts_across_seeds(table.iloc[:0])
