"""qlf.plots: the scaling-law figure (one page, a loss and an accuracy panel per task) and PNGs."""
import re

import numpy as np
import pandas as pd
import pytest

from qlf.plots import TASK_TITLES, plot_scaling_law, scaling_law_figure
from qlf.scaling import random_guess_loss, transitions
from qlf.tasks import TASKS

BUDGETS = 10.0 ** np.arange(9, 15)


def synthetic_frontier(tasks, seed=0):
    """Flat near the random guess, then a drop at 1e12 (accuracy jumps with it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        size = TASKS[task].default_size
        flat = random_guess_loss(task, size) * 0.98
        for budget in BUDGETS:
            dropped = budget >= 1e12
            rows.append(dict(task=task, size=size, budget=budget,
                             val_loss=(0.05 if dropped else flat) * np.exp(rng.normal(0, 0.02)),
                             test_acc=0.9 if dropped else 0.0, run_id="d16_L4_H4_lr0.001_B64",
                             n_runs=8))
    return pd.DataFrame(rows)


def pdf_pages(path):
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def pdf_panels(path):
    subject = re.search(rb"/Subject \(([^)]*)\)", path.read_bytes()).group(1).decode()
    return [entry.split(":") for entry in subject.split("; ")]


@pytest.mark.parametrize("count", [1, 3, 10])
def test_pdf_page_panels_and_pngs(tmp_path, count):
    tasks = list(TASKS)[:count]
    front = synthetic_frontier(tasks)
    # through CSV files, as the workflow passes them
    front.to_csv(tmp_path / "frontier.csv", index=False)
    transitions(front).to_csv(tmp_path / "transitions.csv", index=False)
    written = plot_scaling_law(pd.read_csv(tmp_path / "frontier.csv"),
                               pd.read_csv(tmp_path / "transitions.csv"),
                               tmp_path / "out" / "scaling_law.pdf", png_dir=tmp_path / "png",
                               tasks=tasks, png_dpi=60)
    pdf = tmp_path / "out" / "scaling_law.pdf"
    assert written[0] == pdf and pdf_pages(pdf) == 1
    assert pdf_panels(pdf) == [[kind, task] for task in tasks for kind in ("loss", "acc")]
    assert written[1:] == [tmp_path / "png" / f"{task}.png" for task in tasks]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted(
        f"{task}.png" for task in tasks)
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_png_dir_only_the_pdf_is_written(tmp_path):
    front = synthetic_frontier(["addition"])
    written = plot_scaling_law(front, None, tmp_path / "s.pdf")
    assert written == [tmp_path / "s.pdf"] and list(tmp_path.iterdir()) == written


def test_panels_axes_labels_and_layout():
    tasks = list(TASK_TITLES)  # the paper's ten (other registered tasks are titled by name)
    front = synthetic_frontier(tasks)
    fig, panels = scaling_law_figure(front, transitions(front))
    assert len(fig.axes) == 2 * len(tasks) and set(panels) == set(tasks)
    assert list(panels) == list(TASK_TITLES)  # default: the paper's order
    for i, (task, (loss_ax, acc_ax)) in enumerate(panels.items()):
        assert loss_ax.get_title() == TASK_TITLES[task]
        assert loss_ax.get_xscale() == "log" and loss_ax.get_yscale() == "log"
        assert acc_ax.get_yscale() == "linear" and acc_ax.get_ylim()[0] < 0 < 1 < \
            acc_ax.get_ylim()[1]
        assert acc_ax.get_xlabel() == "Training FLOPs"
        if i % 5 == 0:
            assert loss_ax.get_ylabel() == "Validation loss"
            assert acc_ax.get_ylabel() == "Test accuracy"
        # the accuracy panel sits right under its loss panel, in the same column
        loss_box, acc_box = loss_ax.get_position(), acc_ax.get_position()
        assert loss_box.x0 == pytest.approx(acc_box.x0) and acc_box.y1 < loss_box.y0
        # five columns, a second row pair from the sixth task on
        first_loss, first_acc = (ax.get_position() for ax in panels[tasks[0]])
        assert loss_box.x0 == pytest.approx(panels[list(panels)[i % 5]][0].get_position().x0)
        if i >= 5:
            assert loss_box.y1 < first_acc.y0
        else:
            assert loss_box.y0 == pytest.approx(first_loss.y0)


def test_panel_content_baseline_fit_and_transition():
    front = synthetic_frontier(["addition", "graph_path"])
    trans = transitions(front)
    assert list(trans.transition_budget) == [1e12, 1e12]
    fig, panels = scaling_law_figure(front, trans)
    for task, (loss_ax, acc_ax) in panels.items():
        ys = [tuple(line.get_ydata()) for line in loss_ax.get_lines()]
        guess = random_guess_loss(task, TASKS[task].default_size)
        assert (guess, guess) in ys  # the dashed random-guess line
        points = front[front.task == task]
        assert tuple(points.val_loss) in ys and tuple(points.test_acc) in [
            tuple(line.get_ydata()) for line in acc_ax.get_lines()]
        for ax in (loss_ax, acc_ax):  # the transition line in both rows
            assert (1e12, 1e12) in [tuple(line.get_xdata()) for line in ax.get_lines()]
        assert any("1e12" in text.get_text() for text in loss_ax.texts)
        assert any(line.get_label().startswith("power law") for line in loss_ax.get_lines())
    # without transitions: no fit, no vertical line
    fig, panels = scaling_law_figure(front, None, tasks=["graph_path"])
    assert len(fig.axes) == 2
    loss_ax, acc_ax = panels["graph_path"]
    assert (1e12, 1e12) not in [tuple(line.get_xdata()) for line in acc_ax.get_lines()]
    assert not any(line.get_label().startswith("power law") for line in loss_ax.get_lines())


def test_transition_label_inside_the_panel_at_the_last_budget():
    # the default config's addition grid ends at its transition (1e13): the label must not be
    # drawn right of the last point, where the axes clip it
    front = synthetic_frontier(["addition"])
    front = front[front.budget <= 1e12]
    trans = transitions(front).assign(transition_budget=1e12)
    fig, panels = scaling_law_figure(front, trans)
    loss_ax = panels["addition"][0]
    fig.canvas.draw()
    label = next(t for t in loss_ax.texts if "transition" in t.get_text())
    box = label.get_window_extent()
    panel = loss_ax.get_window_extent()
    assert panel.x0 <= box.x0 and box.x1 <= panel.x1
    # in the middle of the range the label stays right of its line
    full = synthetic_frontier(["addition"])
    fig, panels = scaling_law_figure(full, transitions(full))
    label = next(t for t in panels["addition"][0].texts if "transition" in t.get_text())
    assert label.get_ha() == "left"


def test_task_selection_and_bad_input(tmp_path):
    front = synthetic_frontier(["addition", "multiplication", "graph_path"])
    fig, panels = scaling_law_figure(front, None, tasks=["graph_path", "addition"])
    assert list(panels) == ["graph_path", "addition"] and len(fig.axes) == 4
    with pytest.raises(ValueError, match=r"\['maximum_subarray'\] not in the frontier"):
        scaling_law_figure(front, None, tasks=["addition", "maximum_subarray"])
    with pytest.raises(ValueError, match="repeated"):
        scaling_law_figure(front, None, tasks=["addition", "addition"])
    with pytest.raises(ValueError, match="empty list"):
        scaling_law_figure(front, None, tasks=[])
    with pytest.raises(ValueError, match="missing columns.*test_acc"):
        plot_scaling_law(front.drop(columns="test_acc"), None, tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="transitions: missing columns"):
        plot_scaling_law(front, front, tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="empty"):
        plot_scaling_law(front.iloc[:0], None, tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="png_dpi"):
        plot_scaling_law(front, None, tmp_path / "x.pdf", png_dpi=0)
    assert not (tmp_path / "x.pdf").exists()


def synthetic_runs(tasks, seed=1):
    """Every run of a small grid: three widths x two depths x two lrs per budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        for budget in BUDGETS:
            for d_model in (16, 32, 64):
                for n_layers in (2, 4):
                    for lr in (1e-3, 3e-3):
                        rows.append(dict(task=task, size=TASKS[task].default_size, budget=budget,
                                         d_model=d_model, n_layers=n_layers, lr=lr,
                                         val_loss=float(rng.uniform(0.1, 1.0)),
                                         test_acc=float(rng.uniform(0, 1))))
    runs = pd.DataFrame(rows)
    runs.loc[3, "val_loss"] = np.nan  # a diverged run
    return runs


def test_every_run_is_a_point_coloured_by_its_shape():
    tasks = ["addition", "graph_path"]
    runs = synthetic_runs(tasks)
    fig, panels = scaling_law_figure(synthetic_frontier(tasks), None, runs_df=runs)
    colour_of = {}
    for task, (loss_ax, acc_ax) in panels.items():
        mine = runs[runs.task == task]
        for ax, y in ((loss_ax, "val_loss"), (acc_ax, "test_acc")):
            (points,) = ax.collections
            drawn = mine[np.isfinite(mine[y])]  # a diverged run has no point
            np.testing.assert_allclose(np.asarray(points.get_offsets(), float),
                                       drawn[["budget", y]].to_numpy(float))
            colours = points.get_facecolors()[:, :3]
            assert len(colours) == len(drawn)
            for shape, colour in zip(zip(drawn.d_model, drawn.n_layers), colours):
                colour_of.setdefault(shape, tuple(np.round(colour, 6)))
                assert colour_of[shape] == tuple(np.round(colour, 6))  # one colour per shape
            # the frontier is drawn over the points
            assert all(line.get_zorder() > points.get_zorder() for line in ax.get_lines()
                       if line.get_label() == "compute-optimal")
    assert len(set(colour_of.values())) == 6
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "d16 L2", "d16 L4", "d32 L2", "d32 L4", "d64 L2", "d64 L4"]  # by parameter count


def test_runs_legend_stays_on_the_page_and_pngs_have_the_runs(tmp_path):
    tasks = ["addition"]
    runs = synthetic_runs(tasks)
    fig, panels = scaling_law_figure(synthetic_frontier(tasks), None, runs_df=runs)
    fig.draw_without_rendering()  # lays out the labels
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
    acc_ax = panels["addition"][1]
    assert box.y1 <= acc_ax.xaxis.label.get_window_extent().y0  # under the x label
    written = plot_scaling_law(synthetic_frontier(tasks), None, tmp_path / "s.pdf",
                               png_dir=tmp_path, runs_df=runs, png_dpi=40)
    assert written[1].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="runs: missing columns.*d_model"):
        scaling_law_figure(synthetic_frontier(tasks), None, runs_df=runs.drop(columns="d_model"))
