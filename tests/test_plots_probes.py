"""qlf.plots probe figures: quiet/loud across compute and within one run."""
import re

import numpy as np
import pandas as pd
import pytest

from qlf.plots import (plot_quiet_loud, plot_within_run, probe_group_curves,
                       quiet_loud_figures, within_run_figures)

BUDGETS = [1e9, 1e10, 1e11, 1e12, 1e13]
FEATURES = {"addition": ["retrieve_first_op", "carry"],
            "graph_breadth_first_search": ["adjacency_list", "queue"]}
N_ROWS = 6


def true_loss(budget_or_step, row):
    return 0.6 / (1 + np.log10(1 + budget_or_step)) + 0.01 * row


def probe_table(x, values, seed_col=False):
    """Layer 0 has the lower train loss and the real test losses; layer 1 a lower but
    unselectable test loss (a figure choosing by test loss would be wrong)."""
    rows = []
    for task, features in FEATURES.items():
        for feature in features:
            for value in values:
                for row in range(N_ROWS):
                    for layer, train in ((0, 0.2), (1, 0.4)):
                        test = true_loss(value, row) if layer == 0 else 1e-3
                        rows.append({"task": task, "size": 6, "feature": feature, "row": row,
                                     "layer": layer, "kind": "binary", x: value,
                                     "train_loss": train, "test_loss": test})
    df = pd.DataFrame(rows)
    return df.rename(columns={x: "seed"}) if seed_col else df


@pytest.fixture(scope="module")
def tables():
    across = probe_table("budget", BUDGETS)
    baseline = probe_table("seed", [0, 1], seed_col=True)
    baseline["test_loss"] = np.where(baseline.layer == 0, 0.69 + 0.01 * baseline.seed, 1e-3)
    verdicts = pd.DataFrame([dict(task=t, feature=f, group=g, verdict="quiet")
                             for t, fs in FEATURES.items() for f in fs
                             for g in ("beginning", "middle", "end")])
    frontier = pd.DataFrame([dict(task=t, size=6, budget=b, val_loss=0.7 if b < 1e12 else 0.05)
                             for t in FEATURES for b in BUDGETS])
    transitions = pd.DataFrame([dict(task="addition", size=6, transition_budget=1e12),
                                dict(task="graph_breadth_first_search", size=6,
                                     transition_budget=np.nan)])
    return across, baseline, verdicts, frontier, transitions


def pdf_subject(path):
    data = path.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    subject = re.search(rb"/Subject \(([^)]*)\)", data).group(1).decode()
    return pages, subject.split("; ")


def test_quiet_loud_pdf(tmp_path, tables):
    across, baseline, verdicts, frontier, transitions = tables
    across.to_csv(tmp_path / "a.csv", index=False)  # through CSV, as the workflow passes it
    out = plot_quiet_loud(pd.read_csv(tmp_path / "a.csv"), baseline, verdicts, frontier,
                          transitions, tmp_path / "plots" / "quiet_loud.pdf")
    pages, panels = pdf_subject(out)
    assert pages == 2
    assert panels == [f"{t}:{f}" for t, fs in FEATURES.items() for f in fs]


def test_quiet_loud_panels_show_best_layer_means(tables):
    across, baseline, verdicts, frontier, transitions = tables
    pages = quiet_loud_figures(across, baseline, verdicts, frontier, transitions)
    assert [task for task, _, _ in pages] == ["addition", "graph_breadth_first_search"]
    ax, twin = pages[0][2]["carry"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    groups = {"beginning": [0, 1], "middle": [2, 3], "end": [4, 5]}
    for group, rows in groups.items():
        np.testing.assert_allclose(lines[group].get_xdata(), BUDGETS)
        want = [np.mean([true_loss(b, r) for r in rows]) for b in BUDGETS]
        np.testing.assert_allclose(lines[group].get_ydata(), want, rtol=1e-9)
    dotted = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
    np.testing.assert_allclose(dotted, [0.695] * 3)
    # the seeds' range is shaded behind each level: from seed 0 (0.69) to seed 1 (0.70)
    bands = [patch.get_extents().transformed(ax.transData.inverted()) for patch in ax.patches]
    assert len(bands) == 3
    for band in bands:
        assert (band.y0, band.y1) == pytest.approx((0.69, 0.70))
    assert [line.get_xdata()[0] for line in ax.get_lines()
            if line.get_label() == "transition"] == [1e12]
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), [0.7, 0.7, 0.7, 0.05, 0.05])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "carry" in ax.get_title() and "middle: quiet" in ax.get_title()
    bfs_ax, _ = pages[1][2]["queue"]  # no transition for this task: no red line
    assert not [line for line in bfs_ax.get_lines() if line.get_label() == "transition"]


def test_within_run_pdf_and_step_zero(tmp_path, tables):
    _, baseline, _, _, _ = tables
    within = probe_table("step", [0, 1, 2, 4, 8, 16])
    out = plot_within_run(within, baseline, tmp_path / "within.pdf")
    assert pdf_subject(out)[0] == 2
    ax, twin = within_run_figures(within, baseline)[0][2]["retrieve_first_op"]
    assert twin is None  # no validation curve given
    lines = ax.get_lines()
    hollow = [line for line in lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 3 and all(line.get_xdata()[0] == 0.5 for line in hollow)
    solid = {line.get_label(): line for line in lines}
    np.testing.assert_allclose(solid["end"].get_xdata(), [1, 2, 4, 8, 16])


def test_probe_tables_are_checked(tables):
    across, baseline, verdicts, frontier, transitions = tables
    with pytest.raises(ValueError, match="missing columns"):
        quiet_loud_figures(across.drop(columns="train_loss"), baseline)
    with pytest.raises(ValueError, match="seed"):
        quiet_loud_figures(across, baseline.drop(columns="seed"))
    with pytest.raises(ValueError, match="empty"):
        quiet_loud_figures(across.iloc[:0], baseline)
    # skipped probes (NaN train loss) are left out of the group means
    skipped = across.copy()
    skipped.loc[(skipped.row == 0), "train_loss"] = np.nan
    curves = probe_group_curves(skipped, "budget")
    first = curves[(curves.task == "addition") & (curves.feature == "carry")
                   & (curves.group == "beginning") & (curves.budget == 1e9)]
    assert first.loss.iloc[0] == pytest.approx(true_loss(1e9, 1))


def test_within_run_shows_the_runs_val_curve(tmp_path, tables):
    _, baseline, _, _, _ = tables
    within = probe_table("step", [0, 1, 2, 4, 8, 16])
    val = pd.DataFrame(dict(task="addition", step=[1, 3, 9, 16], val_loss=[1.2, 0.7, 0.69, 0.1]))
    pages = within_run_figures(within, baseline, val)
    ax, twin = pages[0][2]["carry"]
    (line,) = twin.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [1, 3, 9, 16])
    np.testing.assert_allclose(line.get_ydata(), [1.2, 0.7, 0.69, 0.1])
    assert twin.get_yscale() == "log" and "val loss" in twin.get_ylabel()
    assert pages[1][2]["queue"][1] is None  # BFS has no curve in val
    out = plot_within_run(within, baseline, tmp_path / "w.pdf", val_df=val)
    assert pdf_subject(out)[0] == 2
    with pytest.raises(ValueError, match="val curves: missing columns"):
        within_run_figures(within, baseline, val.drop(columns="val_loss"))


def test_quiet_loud_grid_shows_the_advantage_over_random_inits(tmp_path, tables):
    from matplotlib.patches import Rectangle

    from qlf.plots import plot_quiet_loud_grid, quiet_loud_grid

    across, baseline, _, _, transitions = tables
    verdicts = pd.DataFrame([dict(task=t, feature=f, group=g, verdict=v, onset_budget=o)
                             for t, fs in FEATURES.items() for f in fs
                             for g, v, o in (("beginning", "quiet", 1e10),
                                             ("middle", "loud", 1e12),
                                             ("end", "neither", np.nan))])
    fig, panels = quiet_loud_grid(across, baseline, verdicts, transitions)
    assert list(panels) == ["addition", "graph_breadth_first_search"]
    groups = {"beginning": [0, 1], "middle": [2, 3], "end": [4, 5]}
    ax, table = panels["addition"]
    assert list(table.index) == [(f, g) for f in FEATURES["addition"] for g in groups]
    assert list(table.columns) == BUDGETS
    # seeds 0 and 1 give the random-init level (0.69 + 0.70) / 2 at the best layer (layer 0)
    want = [[0.695 - np.mean([true_loss(b, r) for r in groups[g]]) for b in BUDGETS]
            for _, g in table.index]
    np.testing.assert_allclose(table.to_numpy(), want, rtol=1e-9)
    (mesh,) = ax.collections  # the heatmap's cells, row by row
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(table.shape), want)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "retrieve_first_op · beginning  [quiet]"
    assert labels[4] == "carry · middle  [loud]" and labels[5] == "carry · end  [neither]"
    # gold boxes on the onset cells: column of 1e10 for beginnings, of 1e12 for middles
    boxes = sorted((int(p.get_y()), int(p.get_x())) for p in ax.patches
                   if isinstance(p, Rectangle) and p.get_edgecolor()[:3] != (1, 1, 1)
                   and not p.get_fill())
    assert boxes == [(0, 1), (1, 3), (3, 1), (4, 3)]
    # the transition (1e12) line stands before its column; BFS has none
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [3]
    assert not panels["graph_breadth_first_search"][0].get_lines()
    out = plot_quiet_loud_grid(across, baseline, verdicts, transitions, tmp_path / "g.pdf")
    pages, subject = pdf_subject(out)
    assert pages == 1 and subject[0].startswith("addition:retrieve_first_op/beginning,")
    with pytest.raises(ValueError, match="verdicts: missing columns"):
        quiet_loud_grid(across, baseline, verdicts.drop(columns="onset_budget"))
