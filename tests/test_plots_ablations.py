"""qlf.plots.plot_ablations: one page, a panel per task, three bars per feature with CI whiskers,
drawn from the summary table that qlf.ablations writes."""
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from qlf.ablations import Evaluation, summarise, summary_table
from qlf.plots import ablations_figure, plot_ablations


def synthetic_result(task, feature, base_p, ablated_p, control_p, seed):
    rng = np.random.default_rng(seed)
    n = 200
    ev = lambda p: Evaluation(rng.random(n), rng.random(n) < p)
    result = summarise(ev(base_p), ev(ablated_p), [ev(control_p) for _ in range(4)],
                       n_boot=200, seed=seed)
    return {"task": task, "size": 4, "feature": feature, "targets": [{"row": 0, "layer": 1}],
            **result}


@pytest.fixture
def summary():
    results = [synthetic_result("addition", "carry", 0.95, 0.25, 0.9, 0),
               synthetic_result("addition", "retrieve_first_op", 0.95, 0.9, 0.93, 1),
               synthetic_result("graph_breadth_first_search", "queue", 0.8, 0.4, 0.78, 2),
               synthetic_result("graph_breadth_first_search", "adjacency_list", 0.8, 0.7, 0.8, 3)]
    return summary_table(results)


def test_bars_and_whiskers_show_the_table(summary):
    fig, panels = ablations_figure(summary)
    assert list(panels) == ["addition", "graph_breadth_first_search"]  # the paper's order
    for task, ax in panels.items():
        rows = summary[summary.task == task]
        heights = [p.get_height() for p in ax.patches]
        expected = [v for cond in ("baseline", "ablated", "control")
                    for v in rows[f"{cond}_acc"]]
        np.testing.assert_allclose(heights, expected)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(rows.feature)
        # each bar's whisker spans its CI
        spans = sorted(tuple(np.round(seg[:, 1], 9)) for c in ax.containers
                       if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments())
        cis = sorted(tuple(np.round((rows[f"{cond}_acc_lo"].iloc[i],
                                     rows[f"{cond}_acc_hi"].iloc[i]), 9))
                     for cond in ("baseline", "ablated", "control") for i in range(len(rows)))
        assert spans == cis


@pytest.mark.parametrize("tasks", [["addition"], ["addition", "graph_breadth_first_search"]])
def test_title_and_legend_fit_the_page(summary, tasks):
    # the default config ablates one task: its one-panel page must still show the whole title
    # and legend
    fig, _ = ablations_figure(summary[summary.task.isin(tasks)])
    fig.canvas.draw()
    page = fig.bbox
    for artist in (fig._suptitle, fig.legends[0]):
        box = artist.get_window_extent()
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def test_pdf_through_csv(tmp_path, summary):
    summary.to_csv(tmp_path / "summary.csv", index=False)
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
        plot_ablations(summary.drop(columns="control_acc_hi"), tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="repeats"):
        plot_ablations(pd.concat([summary, summary.iloc[:1]]), tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="empty"):
        plot_ablations(summary.iloc[:0], tmp_path / "x.pdf")


def test_several_seeds_bar_is_their_mean_and_each_seed_a_dot_with_its_ci(summary):
    seeds = [summary.assign(seed=s, ablated_acc=summary.ablated_acc - 0.1 * s,
                            ablated_acc_lo=summary.ablated_acc_lo - 0.1 * s,
                            ablated_acc_hi=summary.ablated_acc_hi - 0.1 * s) for s in range(3)]
    table = pd.concat(seeds, ignore_index=True).sample(frac=1, random_state=0)  # any row order
    fig, panels = ablations_figure(table)
    assert "3 seeds" in fig._suptitle.get_text()
    for task, ax in panels.items():
        rows = summary[summary.task == task]
        heights = [p.get_height() for p in ax.patches]
        expected = [v + (-0.1 if cond == "ablated" else 0.0)  # mean of 0, -0.1, -0.2
                    for cond in ("baseline", "ablated", "control") for v in rows[f"{cond}_acc"]]
        np.testing.assert_allclose(heights, expected)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(rows.feature)
        dots = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(dots) == 3 * 3  # a dot series per condition and seed
        ys = sorted(np.round(y, 9) for c in dots for y in c.lines[0].get_ydata())
        want = sorted(np.round(v - (0.1 * s if cond == "ablated" else 0), 9)
                      for cond in ("baseline", "ablated", "control") for s in range(3)
                      for v in rows[f"{cond}_acc"])
        assert ys == want
        spans = sorted(tuple(np.round(seg[:, 1], 9)) for c in dots
                       for seg in c.lines[2][0].get_segments())
        cis = sorted(tuple(np.round((lo - (0.1 * s if cond == "ablated" else 0),
                                     hi - (0.1 * s if cond == "ablated" else 0)), 9))
                     for cond in ("baseline", "ablated", "control") for s in range(3)
                     for lo, hi in zip(rows[f"{cond}_acc_lo"], rows[f"{cond}_acc_hi"]))
        assert spans == cis
    with pytest.raises(ValueError, match=r"\(task, feature, seed\) repeats"):
        ablations_figure(pd.concat([table, table.iloc[:1]]))


def test_one_seed_column_draws_as_without_it(summary):
    plain, _ = ablations_figure(summary)
    seeded, _ = ablations_figure(summary.assign(seed=7))
    for a, b in zip(plain.axes, seeded.axes):
        assert [p.get_height() for p in a.patches] == [p.get_height() for p in b.patches]
        assert len(b.containers) == len(a.containers)
