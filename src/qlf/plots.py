"""Figures. Matplotlib through Figure objects and the Agg/PDF canvases only: no pyplot, so no
global state and no display; plots never train and never import torch.

Scaling-law figure (pipeline.md §9.4, with the fit and transition of qlf.scaling added): one page,
a panel pair per task, up to five tasks per row pair. The top panel of a pair is the
compute-optimal validation loss against training FLOPs (log-log) with the random-guess baseline
(dashed) and the fitted power law (solid over its fit range, dotted beyond); the bottom panel is
the same runs' test accuracy (linear 0..1). A transition budget is a vertical line in both.
The PDF's Subject metadata lists the panels ("loss:addition; acc:addition; ...") so a reader
can check the figure without rendering it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from .scaling import CELL, format_budget, power_law, random_guess_loss

# The paper's panel order (pipeline.md §9.4) and readable names.
TASK_TITLES = {
    "addition": "Addition",
    "majority_of_majority": "Majority of majorities",
    "activity_selection": "Activity selection",
    "multiplication": "Multiplication",
    "maximum_subarray": "Maximum subarray",
    "graph_breadth_first_search": "Breadth first search",
    "graph_depth_first_search": "Depth first search",
    "graph_min_spanning_tree_kruskal": "Minimum spanning tree",
    "graph_path": "Shortest path",
    "graph_topological_sort": "Topological sorting",
}
MAX_COLUMNS = 5
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
FRONTIER_NEEDS = CELL + ["val_loss", "test_acc"]
TRANSITION_NEEDS = ["task", "size", "fit_a", "fit_b", "fit_from", "fit_to", "transition_budget"]


def _check_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; it has {list(df.columns)}")


def _task_order(frontier_df: pd.DataFrame, tasks) -> list[str]:
    present = list(dict.fromkeys(frontier_df.task))
    if tasks is None:  # the paper's order, then any other task
        return [t for t in TASK_TITLES if t in present] + sorted(set(present) - set(TASK_TITLES))
    tasks = list(tasks)
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks: repeated names in {tasks}")
    absent = [t for t in tasks if t not in present]
    if absent or not tasks:
        raise ValueError(f"tasks: {absent or 'an empty list'} not in the frontier; it holds "
                         f"{present}")
    return tasks


def _draw_task(loss_ax: Axes, acc_ax: Axes, task: str, points: pd.DataFrame,
               fits: pd.DataFrame | None) -> None:
    """One task's loss and accuracy panels: one line per size (normally one)."""
    sizes = sorted(points["size"].unique())
    for i, size in enumerate(sizes):
        color = f"C{i}"
        pts = points[points["size"] == size].sort_values("budget")
        label = "compute-optimal" if len(sizes) == 1 else f"size {size}"
        loss_ax.plot(pts.budget, pts.val_loss, "o-", color=color, label=label)
        acc_ax.plot(pts.budget, pts.test_acc, "o-", color=color)
        loss_ax.axhline(random_guess_loss(task, int(size)), color="red" if len(sizes) == 1
                        else color, ls="--", lw=1, label="random guess")
        fit = None if fits is None else fits[(fits.task == task) & (fits["size"] == size)]
        if fit is None or fit.empty:
            continue
        fit = fit.iloc[0]
        if np.isfinite(fit.fit_a) and np.isfinite(fit.fit_b):
            inside = np.geomspace(fit.fit_from, fit.fit_to, 50)
            beyond = np.geomspace(fit.fit_to, pts.budget.max(), 50)
            loss_ax.plot(inside, power_law(fit.fit_a, fit.fit_b, inside), "-", color="gray",
                         lw=1, label=f"power law, b={fit.fit_b:.2f}")
            loss_ax.plot(beyond, power_law(fit.fit_a, fit.fit_b, beyond), ":", color="gray", lw=1)
        if np.isfinite(fit.transition_budget):
            c = fit.transition_budget
            for ax in (loss_ax, acc_ax):
                ax.axvline(c, color="black", ls="-.", lw=1)
            loss_ax.annotate(f"transition\n{format_budget(c)}", xy=(c, 0.95),
                             xycoords=("data", "axes fraction"), xytext=(3, 0),
                             textcoords="offset points", ha="left", va="top", fontsize=7)
    loss_ax.set_xscale("log")
    loss_ax.set_yscale("log")
    # decade ticks on x (minor log ticks on every axis make drawing several times slower);
    # y keeps 2x and 5x ticks, so a loss range under one decade still has labels
    loss_ax.xaxis.set_major_locator(LogLocator(numticks=8))
    loss_ax.xaxis.set_minor_locator(NullLocator())
    loss_ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    for which in ("major", "minor"):  # 0.02 rather than 2x10^-2: narrow labels
        loss_ax.yaxis.set_tick_params(which=which, labelsize=8)
    loss_ax.yaxis.set_major_formatter(PLAIN)
    loss_ax.yaxis.set_minor_formatter(PLAIN)
    acc_ax.set_ylim(-0.03, 1.03)
    loss_ax.set_title(TASK_TITLES.get(task, task), fontsize=10)
    loss_ax.tick_params(labelbottom=False, labelsize=8)
    acc_ax.tick_params(labelsize=8)
    acc_ax.set_xlabel("Training FLOPs")


def _check_inputs(frontier_df, transitions_df) -> None:
    _check_columns(frontier_df, FRONTIER_NEEDS, "plot_scaling_law: frontier")
    if frontier_df.empty:
        raise ValueError("plot_scaling_law: the frontier is empty")
    if transitions_df is not None:
        _check_columns(transitions_df, TRANSITION_NEEDS, "plot_scaling_law: transitions")


def _margins(fig: Figure) -> dict:
    width, height = fig.get_size_inches()
    return dict(left=0.8 / width, right=1 - 0.15 / width, bottom=0.5 / height,
                top=1 - 0.55 / height)


def scaling_law_figure(frontier_df: pd.DataFrame, transitions_df: pd.DataFrame | None = None,
                       tasks=None) -> tuple[Figure, dict[str, tuple[Axes, Axes]]]:
    """The one-page figure and its panels: task -> (loss axes, accuracy axes)."""
    _check_inputs(frontier_df, transitions_df)
    order = _task_order(frontier_df, tasks)
    ncols = min(MAX_COLUMNS, len(order))
    groups = math.ceil(len(order) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 5.0 * groups))
    fig.suptitle("Scaling law: compute-optimal runs")
    # fixed margins in inches (a layout engine would triple the drawing time); a row pair is a
    # loss row over an accuracy row sharing x, pairs farther apart for titles and x labels
    outer = fig.add_gridspec(groups, 1, hspace=0.2, **_margins(fig))
    panels = {}
    for i, task in enumerate(order):
        pair, col = outer[i // ncols].subgridspec(2, ncols, hspace=0.08, wspace=0.35), i % ncols
        loss_ax = fig.add_subplot(pair[0, col])
        acc_ax = fig.add_subplot(pair[1, col], sharex=loss_ax)
        _draw_task(loss_ax, acc_ax, task, frontier_df[frontier_df.task == task], transitions_df)
        if col == 0:
            loss_ax.set_ylabel("Validation loss")
            acc_ax.set_ylabel("Test accuracy")
        panels[task] = (loss_ax, acc_ax)
    panels[order[0]][0].legend(fontsize=7, loc="lower left")
    return fig, panels


def _task_png(frontier_df, transitions_df, task: str, path: Path, dpi: int) -> None:
    fig = Figure(figsize=(4.5, 5.5))
    fig.subplots_adjust(hspace=0.08, **_margins(fig))
    loss_ax = fig.add_subplot(2, 1, 1)
    acc_ax = fig.add_subplot(2, 1, 2, sharex=loss_ax)
    _draw_task(loss_ax, acc_ax, task, frontier_df[frontier_df.task == task], transitions_df)
    loss_ax.set_ylabel("Validation loss")
    acc_ax.set_ylabel("Test accuracy")
    loss_ax.legend(fontsize=7, loc="lower left")
    fig.savefig(path, dpi=dpi)


def plot_scaling_law(frontier_df: pd.DataFrame, transitions_df: pd.DataFrame | None,
                     pdf_path: str | Path, png_dir: str | Path | None = None,
                     tasks=None, png_dpi: int = 110) -> list[Path]:
    """Write the scaling-law figure to `pdf_path` (one page) and, with `png_dir`, one
    `{task}.png` per task (`png_dpi` dots per inch). Returns the written paths, the PDF first.
    `tasks` picks and orders the panels (default: the paper's order)."""
    if isinstance(png_dpi, bool) or not isinstance(png_dpi, int) or not 20 <= png_dpi <= 1200:
        raise ValueError(f"png_dpi must be an integer in 20..1200, got {png_dpi!r}")
    fig, panels = scaling_law_figure(frontier_df, transitions_df, tasks)
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    subject = "; ".join(f"{kind}:{task}" for task in panels for kind in ("loss", "acc"))
    with PdfPages(pdf_path, metadata={"Title": "Scaling law", "Subject": subject}) as pdf:
        pdf.savefig(fig)
    written = [pdf_path]
    if png_dir is not None:
        png_dir = Path(png_dir)
        png_dir.mkdir(parents=True, exist_ok=True)
        for task in panels:
            written.append(png_dir / f"{task}.png")
            _task_png(frontier_df, transitions_df, task, written[-1], png_dpi)
    return written
