"""qlf.plots.plot_ablations: one page; per task a bar panel (four bars per feature: baseline,
ablated, matched control, reference control, with CI whiskers) at the smallest k and, with
several k, a panel of ablated accuracy against k, drawn from the summary table that
qlf.ablations writes."""
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from qlf.ablations import Evaluation, summarise, summary_table
from qlf.plots import ABLATION_CONDITIONS, ablations_figure, plot_ablations
from qlf.provenance import provenance

CONDITIONS = list(ABLATION_CONDITIONS)


def synthetic_result(task, feature, base_p, ablated_p, control_p, seed, k=1, train_seed=0,
                     ref_p=None, controls=True):
    rng = np.random.default_rng(seed)
    n = 200
    ev = lambda p: Evaluation(rng.random(n), rng.random(n) < p)
    ref_p = control_p if ref_p is None else ref_p
    result = summarise(ev(base_p), ev(ablated_p),
                       [ev(control_p) for _ in range(4)] if controls else [],
                       [ev(ref_p) for _ in range(4)] if controls else [], n_boot=200, seed=seed)
    return {"task": task, "size": 4, "feature": feature, "k": k, "train_seed": train_seed,
            "targets": [{"row": 0, "layer": 1}], "provenance": provenance(), **result}


@pytest.fixture
def summary():
    results = [synthetic_result("addition", "carry", 0.95, 0.25, 0.9, 0, ref_p=0.6),
               synthetic_result("addition", "retrieve_first_op", 0.95, 0.9, 0.93, 1),
               synthetic_result("graph_breadth_first_search", "queue", 0.8, 0.4, 0.78, 2),
               synthetic_result("graph_breadth_first_search", "adjacency_list", 0.8, 0.7, 0.8, 3)]
    return summary_table(results)


@pytest.fixture
def sweep(summary):
    """The summary plus k = 2, 3 rows (ablated accuracy falling with k, no controls)."""
    more = [synthetic_result(r.task, r.feature, 0.9, max(0.0, 0.8 - 0.2 * k), 0.9, 10 * k + i,
                             k=k, controls=False)
            for k in (2, 3) for i, r in enumerate(summary.itertuples())]
    return pd.concat([summary, summary_table(more)], ignore_index=True)


def whisker_spans(ax):
    return sorted(tuple(np.round(seg[:, 1], 9)) for c in ax.containers
                  if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments())


def test_bars_and_whiskers_show_the_table(summary):
    fig, panels, curves = ablations_figure(summary)
    assert curves == {}  # one k: no top-k panels
    assert list(panels) == ["addition", "graph_breadth_first_search"]  # the paper's order
    for task, ax in panels.items():
        rows = summary[summary.task == task]
        heights = [p.get_height() for p in ax.patches]
        expected = [v for cond in CONDITIONS for v in rows[f"{cond}_acc"]]
        np.testing.assert_allclose(heights, expected)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(rows.feature)
        # each bar's whisker spans its CI
        cis = sorted(tuple(np.round((rows[f"{cond}_acc_lo"].iloc[i],
                                     rows[f"{cond}_acc_hi"].iloc[i]), 9))
                     for cond in CONDITIONS for i in range(len(rows)))
        assert whisker_spans(ax) == cis
    # the reference control is drawn from its own columns (carry: 0.6 vs matched 0.9)
    carry = summary[summary.feature == "carry"].iloc[0]
    assert carry.ref_control_acc < carry.control_acc - 0.15
    labels = panels["addition"].get_legend_handles_labels()[1]
    assert labels == [ABLATION_CONDITIONS[c][0] for c in CONDITIONS]


def test_top_k_panels_show_ablated_accuracy_against_k(sweep):
    fig, panels, curves = ablations_figure(sweep)
    assert list(curves) == list(panels) == ["addition", "graph_breadth_first_search"]
    assert "k = 1" in fig._suptitle.get_text()
    for task, ax in panels.items():  # the bars still show k = 1 only
        rows = sweep[(sweep.task == task) & (sweep.k == 1)]
        np.testing.assert_allclose([p.get_height() for p in ax.patches],
                                   [v for cond in CONDITIONS for v in rows[f"{cond}_acc"]])
    for task, ax in curves.items():
        rows = sweep[sweep.task == task]
        features = list(dict.fromkeys(rows.feature))
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
        assert [line.get_label() for line in lines] == features
        for feature, line in zip(features, lines):
            mine = rows[rows.feature == feature].sort_values("k")
            np.testing.assert_array_equal(line.get_xdata(), mine.k)
            np.testing.assert_allclose(line.get_ydata(), mine.ablated_acc)
        # the band of one seed is the CI: its vertices span the CI ends
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        first = rows[rows.feature == features[0]]
        assert band.min() == pytest.approx(first.ablated_acc_lo.min())
        assert band.max() == pytest.approx(first.ablated_acc_hi.max())


@pytest.mark.parametrize("tasks", [["addition"], ["addition", "graph_breadth_first_search"]])
@pytest.mark.parametrize("several_k", [False, True])
def test_title_legends_and_labels_fit_the_page(summary, sweep, tasks, several_k):
    # the default config ablates one task: its one-panel page must still show the whole title,
    # legend and tick labels
    table = sweep if several_k else summary
    fig, panels, curves = ablations_figure(table[table.task.isin(tasks)])
    fig.draw_without_rendering()  # lays out tick labels and axis labels
    page = fig.bbox
    artists = [fig._suptitle, fig.legends[0]]
    for ax in [*panels.values(), *curves.values()]:
        artists += [ax, *ax.get_xticklabels(), ax.xaxis.label, ax.yaxis.label, ax.title]
    for artist in artists:
        if getattr(artist, "get_text", lambda: "drawn")() == "":
            continue  # an unset label has no place on the page
        box = artist.get_window_extent()
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    # the bar panels' tick labels do not run into the top-k panels below them
    for task, ax in curves.items():
        lowest = min(t.get_window_extent().y0 for t in panels[task].get_xticklabels())
        assert lowest > ax.get_window_extent().y1


def test_pdf_through_csv(tmp_path, sweep):
    sweep.to_csv(tmp_path / "summary.csv", index=False)
    out = plot_ablations(pd.read_csv(tmp_path / "summary.csv"), tmp_path / "plots" / "abl.pdf")
    data = out.read_bytes()
    assert out == tmp_path / "plots" / "abl.pdf" and data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == 1
    subject = re.search(rb"/Subject \(([^)]*)\)", data).group(1).decode()
    assert subject == ("addition:carry,retrieve_first_op; "
                       "graph_breadth_first_search:queue,adjacency_list")


def test_missing_ci_and_bad_input(tmp_path, summary):
    summary.loc[0, ["drop_rel_lo", "baseline_acc_lo", "baseline_acc_hi"]] = np.nan
    ablations_figure(summary)  # a missing CI draws no whisker
    with pytest.raises(ValueError, match="missing columns"):
        plot_ablations(summary.drop(columns="ref_control_acc_hi"), tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="repeats"):
        plot_ablations(pd.concat([summary, summary.iloc[:1]]), tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="empty"):
        plot_ablations(summary.iloc[:0], tmp_path / "x.pdf")


def test_several_seeds_bar_is_their_mean_and_each_seed_a_dot_with_its_ci(summary, sweep):
    def shifted(table, s):
        return table.assign(train_seed=s, ablated_acc=table.ablated_acc - 0.1 * s,
                            ablated_acc_lo=table.ablated_acc_lo - 0.1 * s,
                            ablated_acc_hi=table.ablated_acc_hi - 0.1 * s)

    table = pd.concat([shifted(sweep, s) for s in range(3)],
                      ignore_index=True).sample(frac=1, random_state=0)  # any row order
    fig, panels, curves = ablations_figure(table)
    assert "3 training seeds" in fig._suptitle.get_text()
    for task, ax in panels.items():
        # features in order of first appearance (shuffled here): read the order off the ticks
        features = [t.get_text() for t in ax.get_xticklabels()]
        rows = summary[summary.task == task].set_index("feature")
        assert sorted(features) == sorted(rows.index)
        rows = rows.loc[features]
        heights = [p.get_height() for p in ax.patches]
        expected = [v + (-0.1 if cond == "ablated" else 0.0)  # mean of 0, -0.1, -0.2
                    for cond in CONDITIONS for v in rows[f"{cond}_acc"]]
        np.testing.assert_allclose(heights, expected)
        dots = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(dots) == len(CONDITIONS) * 3  # a dot series per condition and seed
        ys = sorted(np.round(y, 9) for c in dots for y in c.lines[0].get_ydata())
        want = sorted(np.round(v - (0.1 * s if cond == "ablated" else 0), 9)
                      for cond in CONDITIONS for s in range(3) for v in rows[f"{cond}_acc"])
        assert ys == want
        cis = sorted(tuple(np.round((lo - (0.1 * s if cond == "ablated" else 0),
                                     hi - (0.1 * s if cond == "ablated" else 0)), 9))
                     for cond in CONDITIONS for s in range(3)
                     for lo, hi in zip(rows[f"{cond}_acc_lo"], rows[f"{cond}_acc_hi"]))
        assert whisker_spans(ax) == cis
    for task, ax in curves.items():  # the curve is the seeds' mean, the band their range
        rows = sweep[sweep.task == task]
        line = [line for line in ax.get_lines() if len(line.get_xdata()) > 2][0]
        mine = rows[rows.feature == line.get_label()].sort_values("k")
        np.testing.assert_allclose(line.get_ydata(), mine.ablated_acc - 0.1)
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        assert band.min() == pytest.approx(mine.ablated_acc.min() - 0.2)
        assert band.max() == pytest.approx(mine.ablated_acc.max())
    with pytest.raises(ValueError, match=r"\(task, feature, k, train_seed\) repeats"):
        ablations_figure(pd.concat([table, table.iloc[:1]]))


def test_one_seed_column_draws_as_without_it(summary):
    plain, _, _ = ablations_figure(summary.drop(columns="train_seed"))
    seeded, _, _ = ablations_figure(summary.assign(train_seed=7))
    for a, b in zip(plain.axes, seeded.axes):
        assert [p.get_height() for p in a.patches] == [p.get_height() for p in b.patches]
        assert len(b.containers) == len(a.containers)
