"""qlf.comparison: the paper's numbers, the agreement rules, the figure and the script."""
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from qlf.comparison import (COLUMNS, KINDS, aggregate_verdict, load_paper_numbers,
                            paper_comparison, parse_seed_verdicts)
from qlf.plots import paper_comparison_figure, plot_paper_comparison
from qlf.provenance import COLUMNS as PROVENANCE, provenance
from script_runner import run_script


def paper_table(*rows):
    """A synthetic paper table: (kind, task, item, value) tuples."""
    return pd.DataFrame([dict(kind=k, task=t, item=i, paper=v, paper_size=16, source=f"src {i}")
                         for k, t, i, v in rows])


def config(tasks=None, grid=(9, 10, 11), probed=()):
    tasks = tasks or {"addition": {"size": 16}}
    return {"grid": {"budgets": list(grid)}, "tasks": tasks,
            "probes": {"tasks": {t: {"target_budget": 11} for t in probed}}}


def transitions_table(**budgets):
    return pd.DataFrame([dict(task=t, size=16, transition_budget=b, reason="")
                         for t, b in budgets.items()])


def compare(paper, transitions=None, quiet_loud=None, ablations=None, cfg=None):
    transitions = transitions if transitions is not None else transitions_table(addition=1e11)
    return paper_comparison(paper, transitions, quiet_loud, ablations, cfg or config())


# -- the paper's numbers -------------------------------------------------------------------------

def test_packaged_numbers_hold_the_headline_numbers_each_with_a_source():
    paper = load_paper_numbers()
    assert set(paper.kind) == set(KINDS)
    assert (paper.source.str.contains("2505.03997")).all()
    budgets = paper[paper.kind == "transition"].set_index("task").paper.to_dict()
    assert budgets == {"addition": 1e12, "graph_breadth_first_search": 1e13,
                       "maximum_subarray": 1e13, "activity_selection": 1e13,
                       "graph_depth_first_search": 1e14, "multiplication": 1e16}
    verdicts = paper[paper.kind == "verdict"]
    quiet = set(map(tuple, verdicts[verdicts.paper == "quiet"][["task", "item"]].values))
    loud = set(map(tuple, verdicts[verdicts.paper == "loud"][["task", "item"]].values))
    assert quiet == {("addition", "retrieve_first_op"), ("addition", "carry"),
                     ("graph_breadth_first_search", "queue"),
                     ("multiplication", "retrieve_first_op"), ("multiplication", "carry_16"),
                     ("maximum_subarray", "compute_prev_sign")}
    assert loud == {("graph_depth_first_search", "adjacency_list"),
                    ("activity_selection", "retrieve_start_times"),
                    ("maximum_subarray", "intermediate_sums"),
                    ("graph_breadth_first_search", "adjacency_list")}
    drops = paper[paper.kind == "ablation_drop"].set_index(["task", "item"]).paper.to_dict()
    assert drops == {("addition", "carry"): 0.751, ("graph_breadth_first_search", "queue"): 0.436}


def test_every_paper_feature_is_a_feature_of_its_task_at_the_papers_size():
    from qlf.tasks import get_task
    paper = load_paper_numbers()
    for row in paper[paper.kind != "transition"].itertuples():
        names = [f.name for f in get_task(row.task, int(row.paper_size)).features]
        assert row.item in names, (row.task, row.item, names)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["transition"]["values"].update(addition="1e12"), "finite number"),
    (lambda d: d["ablation_drop"]["values"]["addition"].update(carry=75.1), r"\[0, 1\]"),
    (lambda d: d["verdict"].pop("source"), "'source'"),
    (lambda d: d["verdict"]["quiet"].update(addition="carry"), "list of features"),
    (lambda d: d["verdict"]["loud"].update(addition=["carry"]), "more than one"),
])
def test_bad_paper_file_says_what_is_wrong(tmp_path, edit, message):
    data = yaml.safe_load((load_paper_numbers.__globals__["resources"].files("qlf")
                           / "paper_numbers.yaml").read_text())
    edit(data)
    path = tmp_path / "numbers.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message) as err:
        load_paper_numbers(path)
    assert str(path) in str(err.value) or "paper" in str(err.value)


# -- transitions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ours, agree", [(1e12, "yes"), (1e11, "yes"), (1.2e13, "no"),
                                         (9e10, "no"), (1e13, "yes")])
def test_transition_agrees_within_one_decade(ours, agree):
    paper = paper_table(("transition", "addition", "transition_budget", 1e12))
    out = compare(paper, transitions_table(addition=ours), cfg=config(grid=range(9, 15)))
    assert list(out.columns) == COLUMNS and len(out) == 1
    row = out.iloc[0]
    assert (row.ours, row.agree, row.n_seeds, row.ours_spread) == (ours, agree, 1, "")
    assert "one decade" in row.rule and row.source == "src transition_budget"


def test_transition_not_found_is_not_reached_below_the_papers_budget_else_no():
    paper = paper_table(("transition", "addition", "transition_budget", 1e12))
    none = transitions_table(addition=np.nan)
    below = compare(paper, none, cfg=config(grid=(9, 10, 11))).iloc[0]
    assert below.agree == "not reached by this config" and "1e11" in below.note
    # the task's own budgets override the grid's
    own = config(tasks={"addition": {"size": 16, "budgets": [10, 11, 12, 13]}})
    assert compare(paper, none, cfg=own).iloc[0].agree == "no"


def test_transition_of_a_task_outside_the_config_is_not_measured():
    paper = paper_table(("transition", "multiplication", "transition_budget", 1e16))
    row = compare(paper).iloc[0]
    assert row.agree == "not measured" and math.isnan(row.ours) and math.isnan(row.our_size)


def test_transition_over_seeds_is_the_median_with_the_range():
    paper = paper_table(("transition", "addition", "transition_budget", 1e12))
    seeds = pd.DataFrame(dict(task="addition", size=16, seed=[0, 1, 2],
                              transition_budget=[1e10, 1e11, np.nan]))
    row = compare(paper, seeds).iloc[0]
    assert row.ours == pytest.approx(10 ** 10.5) and row.agree == "no"
    assert (row.ours_low, row.ours_high, row.n_seeds) == (1e10, 1e11, 3)
    assert "1e10..1e11" in row.ours_spread and "2 found" in row.ours_spread


def test_transition_input_errors_name_the_table_and_column():
    paper = paper_table(("transition", "addition", "transition_budget", 1e12))
    with pytest.raises(ValueError, match=r"transitions: missing columns \['transition_budget'\]"):
        compare(paper, pd.DataFrame(dict(task=["addition"], size=[16])))
    with pytest.raises(ValueError, match="no row for the configured task 'addition'"):
        compare(paper, transitions_table(multiplication=1e12))
    with pytest.raises(ValueError, match="no 'tasks'"):
        paper_comparison(paper, transitions_table(addition=1e11), None, None, {})


# -- verdicts ------------------------------------------------------------------------------------

def verdict_rows(feature, *verdicts, task="addition"):
    groups = ["beginning", "middle", "end"]
    return [dict(task=task, feature=feature, group=g, verdict=v) for g, v in zip(groups, verdicts)]


@pytest.mark.parametrize("groups, verdict", [
    (["neither", "quiet", "loud"], "quiet"), (["loud", "neither", "loud"], "loud"),
    (["neither", "neither", "neither"], "neither"), (["mixed", "neither", "neither"], "mixed"),
    (["no transition"] * 3, "no transition")])
def test_aggregate_verdict_quiet_if_any_group_is_quiet(groups, verdict):
    assert aggregate_verdict(groups) == verdict


def test_aggregate_verdict_rejects_unknown_words():
    with pytest.raises(ValueError, match="verdicts must be among"):
        aggregate_verdict(["quiet", "silent"])


def test_verdict_rows_compare_the_aggregate_with_the_paper():
    paper = paper_table(("verdict", "addition", "carry", "quiet"),
                        ("verdict", "addition", "retrieve_first_op", "quiet"),
                        ("verdict", "addition", "sum_bits", "loud"))
    ql = pd.DataFrame(verdict_rows("carry", "neither", "quiet", "loud")
                      + verdict_rows("retrieve_first_op", "loud", "loud", "neither"))
    out = compare(paper, quiet_loud=ql, cfg=config(probed=["addition"])).set_index("item")
    assert out.loc["carry", ["ours", "agree", "n_seeds"]].tolist() == ["quiet", "yes", 1]
    assert out.loc["carry", "note"] == "groups: beginning neither, middle quiet, end loud"
    assert out.loc["retrieve_first_op", ["ours", "agree"]].tolist() == ["loud", "no"]
    assert out.loc["sum_bits", "agree"] == "not measured"  # the table has no such feature


def test_verdicts_of_unprobed_tasks_are_not_measured_and_probed_ones_need_the_table():
    paper = paper_table(("verdict", "addition", "carry", "quiet"))
    assert compare(paper).iloc[0].agree == "not measured"
    with pytest.raises(ValueError, match="no quiet_loud table"):
        compare(paper, cfg=config(probed=["addition"]))
    bad = pd.DataFrame(verdict_rows("carry", "quiet", "silent", "quiet"))
    with pytest.raises(ValueError, match=r"verdict has \['silent'\]"):
        compare(paper, quiet_loud=bad, cfg=config(probed=["addition"]))


def test_no_transition_is_not_reached_only_below_the_papers_transition():
    paper = paper_table(("transition", "addition", "transition_budget", 1e12),
                        ("verdict", "addition", "carry", "quiet"))
    ql = pd.DataFrame(verdict_rows("carry", *["no transition"] * 3))
    none = transitions_table(addition=np.nan)
    low = compare(paper, none, ql, cfg=config(grid=(9, 10, 11), probed=["addition"]))
    assert low.iloc[1].agree == "not reached by this config"
    high = compare(paper, none, ql, cfg=config(grid=(10, 11, 12, 13), probed=["addition"]))
    assert high.iloc[1].agree == "no"


def test_parse_seed_verdicts_labelled_and_plain():
    assert parse_seed_verdicts("s0:quiet s2:no transition s1:loud") == \
        {0: "quiet", 2: "no transition", 1: "loud"}
    assert parse_seed_verdicts("quiet no_transition neither") == \
        {0: "quiet", 1: "no transition", 2: "neither"}
    assert parse_seed_verdicts(np.nan) == {}


def test_several_seeds_aggregate_per_seed_then_need_every_seed_to_agree():
    paper = paper_table(("verdict", "addition", "carry", "quiet"),
                        ("verdict", "addition", "retrieve_first_op", "quiet"))
    rows = []
    # carry: seed 0 quiet in the middle, seed 1 quiet at the end -> quiet in both seeds
    for g, s in zip(["beginning", "middle", "end"],
                    ["s0:neither s1:loud", "s0:quiet s1:loud", "s0:loud s1:quiet"]):
        rows.append(dict(task="addition", feature="carry", group=g, verdict="mixed",
                         n_seeds=2, seed_verdicts=s))
    # retrieve_first_op: seed 1 never quiet -> mixed
    for g, s in zip(["beginning", "middle", "end"],
                    ["s0:quiet s1:loud", "s0:quiet s1:loud", "s0:quiet s1:neither"]):
        rows.append(dict(task="addition", feature="retrieve_first_op", group=g, verdict="mixed",
                         n_seeds=2, seed_verdicts=s))
    out = compare(paper, quiet_loud=pd.DataFrame(rows),
                  cfg=config(probed=["addition"])).set_index("item")
    assert out.loc["carry", ["ours", "agree", "n_seeds", "ours_spread"]].tolist() == \
        ["quiet", "yes", 2, "quiet 2/2"]
    assert out.loc["retrieve_first_op", ["ours", "agree", "ours_spread"]].tolist() == \
        ["mixed", "no", "quiet 1/2, loud 1/2"]
    rows[0]["seed_verdicts"] = "s0:neither s3:loud"
    with pytest.raises(ValueError, match="same 2 seeds"):
        compare(paper, quiet_loud=pd.DataFrame(rows), cfg=config(probed=["addition"]))


# -- ablation drops ------------------------------------------------------------------------------

def summary(*rows):
    """(feature, k, drop_rel, lo, hi, train_seed) rows of results/ablations/summary.csv."""
    return pd.DataFrame([dict(task="addition", feature=f, k=k, drop_rel=d, drop_rel_lo=lo,
                              drop_rel_hi=hi, train_seed=s, seed=0)
                         for f, k, d, lo, hi, s in rows])


DROP = paper_table(("ablation_drop", "addition", "carry", 0.75))


def test_drop_over_seeds_agrees_iff_the_paper_lies_in_their_range():
    cfg = config(probed=["addition"])
    inside = compare(DROP, ablations=summary(("carry", 1, 0.7, 0.6, 0.8, 0),
                                             ("carry", 1, 0.9, 0.85, 0.95, 1),
                                             ("carry", 2, 0.1, 0.0, 0.2, 0)), cfg=cfg).iloc[0]
    assert inside.ours == pytest.approx(0.8) and (inside.ours_low, inside.ours_high) == (0.7, 0.9)
    assert inside.agree == "yes" and inside.n_seeds == 2 and "over 2 seeds" in inside.ours_spread
    outside = compare(DROP, ablations=summary(("carry", 1, 0.5, 0.4, 0.9, 0),
                                              ("carry", 1, 0.6, 0.5, 0.9, 1)), cfg=cfg).iloc[0]
    assert outside.agree == "no"  # the seeds' CIs reach 0.75, their range does not


def test_one_seed_uses_its_bootstrap_ci():
    cfg = config(probed=["addition"])
    yes = compare(DROP, ablations=summary(("carry", 1, 0.6, 0.5, 0.8, 0)), cfg=cfg).iloc[0]
    assert (yes.agree, yes.ours_low, yes.ours_high, yes.n_seeds) == ("yes", 0.5, 0.8, 1)
    assert "bootstrap CI" in yes.ours_spread
    no = compare(DROP, ablations=summary(("carry", 1, 0.6, 0.5, 0.7, 0)), cfg=cfg).iloc[0]
    assert no.agree == "no"


def test_undefined_drop_is_not_reached_and_missing_feature_not_measured():
    cfg = config(probed=["addition"])
    row = compare(DROP, ablations=summary(("carry", 1, np.nan, np.nan, np.nan, 0)),
                  cfg=cfg).iloc[0]
    assert row.agree == "not reached by this config" and "nothing correctly" in row.note
    half = compare(DROP, ablations=summary(("carry", 1, np.nan, np.nan, np.nan, 0),
                                           ("carry", 1, 0.7, 0.6, 0.8, 1)), cfg=cfg).iloc[0]
    assert half.n_seeds == 1 and half.agree == "yes" and "1 of 2 seeds" in half.note
    other = compare(DROP, ablations=summary(("queue", 1, 0.7, 0.6, 0.8, 0)), cfg=cfg).iloc[0]
    assert other.agree == "not measured"
    assert compare(DROP).iloc[0].agree == "not measured"  # addition not probed


def test_across_seeds_table_is_read_as_is():
    cfg = config(probed=["addition"])
    across = pd.DataFrame([dict(task="addition", feature="carry", k=1, n_seeds=3,
                                drop_rel_mean=0.7, drop_rel_min=0.6, drop_rel_max=0.74)])
    row = compare(DROP, ablations=across, cfg=cfg).iloc[0]
    assert (row.ours, row.ours_low, row.ours_high, row.n_seeds, row.agree) == \
        (0.7, 0.6, 0.74, 3, "no")
    one = across.assign(n_seeds=1, drop_rel_min=0.7, drop_rel_max=0.7)
    with pytest.raises(ValueError, match="bootstrap CI"):
        compare(DROP, ablations=one, cfg=cfg)
    row = compare(DROP, ablations=one.assign(drop_rel_lo=0.6, drop_rel_hi=0.8), cfg=cfg).iloc[0]
    assert row.agree == "yes"


def test_ablation_input_errors():
    cfg = config(probed=["addition"])
    with pytest.raises(ValueError, match=r"ablations: missing columns \['k'\]"):
        compare(DROP, ablations=summary(("carry", 1, 0.7, 0.6, 0.8, 0)).drop(columns="k"),
                cfg=cfg)
    twice = summary(("carry", 1, 0.7, 0.6, 0.8, 0), ("carry", 1, 0.7, 0.6, 0.8, 0))
    with pytest.raises(ValueError, match="telling them apart"):
        compare(DROP, ablations=twice.drop(columns="train_seed"), cfg=cfg)
    with pytest.raises(ValueError, match="no ablation table"):
        compare(DROP, cfg=cfg)


# -- the whole table, its figure and the script ----------------------------------------------------

def full_inputs():
    cfg = config(tasks={"addition": {"size": 16},
                        "graph_breadth_first_search": {"size": 16}},
                 grid=(9, 10, 11, 12), probed=["addition"])
    transitions = transitions_table(addition=1e11, graph_breadth_first_search=np.nan)
    ql = pd.DataFrame(verdict_rows("carry", "quiet", "neither", "neither")
                      + verdict_rows("retrieve_first_op", "loud", "loud", "loud"))
    ablations = summary(("carry", 1, 0.7, 0.6, 0.8, 0), ("carry", 1, 0.8, 0.7, 0.9, 1))
    return cfg, transitions, ql, ablations


def test_full_table_has_a_row_per_paper_number_in_order():
    cfg, transitions, ql, ablations = full_inputs()
    paper = load_paper_numbers()
    out = paper_comparison(paper, transitions, ql, ablations, cfg)
    assert list(out[["kind", "task", "item"]].itertuples(index=False)) == \
        list(paper[["kind", "task", "item"]].itertuples(index=False))
    assert set(out.agree) <= {"yes", "no", "not reached by this config", "not measured"}
    got = out.set_index(["kind", "task", "item"]).agree
    assert got["transition", "addition", "transition_budget"] == "yes"
    assert got["transition", "graph_breadth_first_search", "transition_budget"] == \
        "not reached by this config"
    assert got["verdict", "addition", "retrieve_first_op"] == "no"
    assert got["ablation_drop", "addition", "carry"] == "yes"
    # deterministic
    assert out.equals(paper_comparison(paper, transitions, ql, ablations, cfg))


def test_figure_has_a_panel_per_kind_and_keeps_text_on_the_page(tmp_path):
    cfg, transitions, ql, ablations = full_inputs()
    table = paper_comparison(load_paper_numbers(), transitions, ql, ablations, cfg)
    fig, panels = paper_comparison_figure(table)
    assert list(panels) == list(KINDS)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    for ax in panels.values():
        for artist in [*ax.texts, *ax.get_yticklabels(), ax.title]:
            box = artist.get_window_extent(renderer)
            assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, artist.get_text()
    labels = [t.get_text() for t in panels["transition"].get_yticklabels()]
    assert "Breadth first search (size 16; paper 11)" in labels
    pdf = plot_paper_comparison(table, tmp_path / "cmp.pdf")
    subject = re.search(rb"/Subject \(([^)]*)\)", pdf.read_bytes()).group(1).decode()
    assert subject.startswith("transition:yes,not reached by this config")
    with pytest.raises(ValueError, match="missing columns"):
        paper_comparison_figure(table.drop(columns="agree"))


def test_script_writes_the_table_with_this_process_provenance(tmp_path, monkeypatch):
    cfg, transitions, ql, ablations = full_inputs()
    paths = {}
    for name, df in dict(transitions=transitions, quiet_loud=ql, ablations=ablations).items():
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    out = dict(table=tmp_path / "paper_comparison.csv", pdf=tmp_path / "plots" / "cmp.pdf")
    run_script("paper_comparison", monkeypatch, tmp_path, input=paths, output=out,
               params=dict(config=cfg))
    table = pd.read_csv(out["table"], dtype={c: str for c in PROVENANCE})
    assert list(table.columns) == COLUMNS + list(PROVENANCE)
    made = provenance()
    for key in PROVENANCE:
        assert set(table[key]) == {str(made[key])}, key
    assert out["pdf"].stat().st_size > 0
    expected = paper_comparison(load_paper_numbers(), transitions, ql, ablations, cfg)
    assert list(table.agree) == list(expected.agree)
