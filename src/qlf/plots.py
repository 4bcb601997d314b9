"""Figures. Matplotlib through Figure objects and the Agg/PDF canvases only: no pyplot, so no
global state and no display; plots never train and never import torch.

Scaling-law figure (pipeline.md §9.4, with the fit and transition of qlf.scaling added): one page,
a panel pair per task, up to five tasks per row pair. The top panel of a pair is the
compute-optimal validation loss against training FLOPs (log-log) with the random-guess baseline
(dashed) and the fitted power law (solid over its fit range, dotted beyond); the bottom panel is
the same runs' test accuracy (linear 0..1). A transition budget is a vertical line in both.
Behind the frontier line, every run of the grid (results/scaling/{task}.csv) is a point coloured
by its model shape (width x depth), so a reader sees which shape wins at each budget and how far
the others are. The PDF's Subject metadata lists the panels ("loss:addition; acc:addition; ...")
so a reader can check the figure without rendering it.

seaborn draws the statistical layers (the run scatter, the quiet/loud grid) on the Figure's
axes; nothing here sets a global style.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
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
RUN_NEEDS = CELL + ["d_model", "n_layers", "val_loss", "test_acc"]
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


def model_shape(runs: pd.DataFrame) -> pd.Series:
    """"d64 L4" per run: the label (and colour key) of its width x depth."""
    width, depth = runs.d_model.astype(int).astype(str), runs.n_layers.astype(int).astype(str)
    return "d" + width + " L" + depth


def shape_palette(runs: pd.DataFrame) -> dict[str, tuple]:
    """One colour per model shape, in the order of their parameters (12 L d^2); the same shape
    has the same colour in every panel (a categorical palette: which shape wins is the point)."""
    shapes = runs[["d_model", "n_layers"]].drop_duplicates().astype(int)
    shapes = shapes.assign(params=12 * shapes.n_layers * shapes.d_model**2)
    shapes = shapes.sort_values(["params", "n_layers"])
    colours = sns.color_palette("colorblind" if len(shapes) <= 10 else "husl", len(shapes))
    return dict(zip(model_shape(shapes), colours))


def _draw_runs(loss_ax: Axes, acc_ax: Axes, runs: pd.DataFrame, palette: dict) -> None:
    """Every run as a small point coloured by its shape, under the frontier."""
    runs = runs.assign(shape=model_shape(runs))
    for ax, y in ((loss_ax, "val_loss"), (acc_ax, "test_acc")):
        sns.scatterplot(data=runs, x="budget", y=y, hue="shape", palette=palette, ax=ax, s=14,
                        alpha=0.7, linewidth=0, legend=False, zorder=1)
        ax.set_xlabel("")
        ax.set_ylabel("")


def _draw_task(loss_ax: Axes, acc_ax: Axes, task: str, points: pd.DataFrame,
               fits: pd.DataFrame | None, runs: pd.DataFrame | None = None,
               palette: dict | None = None) -> None:
    """One task's loss and accuracy panels: one line per size (normally one), over the task's
    runs (points by shape) when `runs` is given."""
    if runs is not None and len(runs):
        _draw_runs(loss_ax, acc_ax, runs, palette)
    sizes = sorted(points["size"].unique())
    for i, size in enumerate(sizes):
        color = "black" if len(sizes) == 1 else f"C{i}"
        pts = points[points["size"] == size].sort_values("budget")
        label = "compute-optimal" if len(sizes) == 1 else f"size {size}"
        loss_ax.plot(pts.budget, pts.val_loss, "o-", color=color, label=label, ms=4, zorder=3)
        acc_ax.plot(pts.budget, pts.test_acc, "o-", color=color, ms=4, zorder=3)
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
            at_edge = c >= pts.budget.max()  # a label right of the last budget would be clipped
            loss_ax.annotate(f"transition\n{format_budget(c)}", xy=(c, 0.95),
                             xycoords=("data", "axes fraction"), xytext=(-3 if at_edge else 3, 0),
                             textcoords="offset points", ha="right" if at_edge else "left",
                             va="top", fontsize=7)
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


def _check_inputs(frontier_df, transitions_df, runs_df) -> None:
    _check_columns(frontier_df, FRONTIER_NEEDS, "plot_scaling_law: frontier")
    if frontier_df.empty:
        raise ValueError("plot_scaling_law: the frontier is empty")
    if transitions_df is not None:
        _check_columns(transitions_df, TRANSITION_NEEDS, "plot_scaling_law: transitions")
    if runs_df is not None:
        _check_columns(runs_df, RUN_NEEDS, "plot_scaling_law: runs")


LEGEND_COLUMNS = 6


def _legend_inches(palette: dict | None) -> float:
    """Height of the shape legend under the panels (0 without one)."""
    return 0.0 if not palette else 0.3 + 0.17 * math.ceil(len(palette) / LEGEND_COLUMNS)


def _shape_legend(fig: Figure, palette: dict) -> None:
    """The shapes' colours, at the bottom of the page (under the x labels)."""
    handles = [Line2D([], [], ls="", marker="o", ms=4, color=c, label=s)
               for s, c in palette.items()]
    fig.legend(handles=handles, loc="lower center", fontsize=7, ncol=min(len(handles),
               LEGEND_COLUMNS), frameon=False, borderaxespad=0.2, handletextpad=0.1,
               columnspacing=1.0, title="every run, by model shape (width d, layers L)",
               title_fontsize=7)


def _margins(fig: Figure, legend: float = 0.0) -> dict:
    """Fixed margins in inches, `legend` inches more under the x labels."""
    width, height = fig.get_size_inches()
    return dict(left=0.8 / width, right=1 - 0.15 / width, bottom=(0.5 + legend) / height,
                top=1 - 0.75 / height)


def scaling_law_figure(frontier_df: pd.DataFrame, transitions_df: pd.DataFrame | None = None,
                       tasks=None, runs_df: pd.DataFrame | None = None
                       ) -> tuple[Figure, dict[str, tuple[Axes, Axes]]]:
    """The one-page figure and its panels: task -> (loss axes, accuracy axes). `runs_df` (all
    runs, qlf.scaling.load_records' columns) adds every run as a point coloured by its shape."""
    _check_inputs(frontier_df, transitions_df, runs_df)
    order = _task_order(frontier_df, tasks)
    ncols = min(MAX_COLUMNS, len(order))
    groups = math.ceil(len(order) / ncols)
    palette = None if runs_df is None else shape_palette(runs_df[runs_df.task.isin(order)])
    legend = _legend_inches(palette)
    fig = Figure(figsize=(max(3.4 * ncols, 6.0), 5.0 * groups + legend))
    fig.suptitle("Scaling law: compute-optimal runs")
    # fixed margins in inches (a layout engine would triple the drawing time); a row pair is a
    # loss row over an accuracy row sharing x, pairs farther apart for titles and x labels
    outer = fig.add_gridspec(groups, 1, hspace=0.2, **_margins(fig, legend))
    panels = {}
    for i, task in enumerate(order):
        pair, col = outer[i // ncols].subgridspec(2, ncols, hspace=0.08, wspace=0.35), i % ncols
        loss_ax = fig.add_subplot(pair[0, col])
        acc_ax = fig.add_subplot(pair[1, col], sharex=loss_ax)
        _draw_task(loss_ax, acc_ax, task, frontier_df[frontier_df.task == task], transitions_df,
                   None if runs_df is None else runs_df[runs_df.task == task], palette)
        if col == 0:
            loss_ax.set_ylabel("Validation loss")
            acc_ax.set_ylabel("Test accuracy")
        panels[task] = (loss_ax, acc_ax)
    panels[order[0]][0].legend(fontsize=7, loc="lower left")
    if palette:
        _shape_legend(fig, palette)
    return fig, panels


def _task_png(frontier_df, transitions_df, task: str, path: Path, dpi: int,
              runs_df: pd.DataFrame | None = None) -> None:
    runs = None if runs_df is None else runs_df[runs_df.task == task]
    palette = None if runs is None else shape_palette(runs)
    legend = _legend_inches(palette)
    fig = Figure(figsize=(4.5, 5.5 + legend))
    fig.subplots_adjust(hspace=0.08, **_margins(fig, legend))
    loss_ax = fig.add_subplot(2, 1, 1)
    acc_ax = fig.add_subplot(2, 1, 2, sharex=loss_ax)
    _draw_task(loss_ax, acc_ax, task, frontier_df[frontier_df.task == task], transitions_df,
               runs, palette)
    loss_ax.set_ylabel("Validation loss")
    acc_ax.set_ylabel("Test accuracy")
    loss_ax.legend(fontsize=7, loc="lower left")
    if palette:
        _shape_legend(fig, palette)
    fig.savefig(path, dpi=dpi)


def plot_scaling_law(frontier_df: pd.DataFrame, transitions_df: pd.DataFrame | None,
                     pdf_path: str | Path, png_dir: str | Path | None = None,
                     tasks=None, png_dpi: int = 110,
                     runs_df: pd.DataFrame | None = None) -> list[Path]:
    """Write the scaling-law figure to `pdf_path` (one page) and, with `png_dir`, one
    `{task}.png` per task (`png_dpi` dots per inch). Returns the written paths, the PDF first.
    `tasks` picks and orders the panels (default: the paper's order); `runs_df` (every run)
    adds the runs behind the frontier, coloured by model shape."""
    if isinstance(png_dpi, bool) or not isinstance(png_dpi, int) or not 20 <= png_dpi <= 1200:
        raise ValueError(f"png_dpi must be an integer in 20..1200, got {png_dpi!r}")
    fig, panels = scaling_law_figure(frontier_df, transitions_df, tasks, runs_df)
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
            _task_png(frontier_df, transitions_df, task, written[-1], png_dpi, runs_df)
    return written


# -- probe figures: quiet and loud features (qlf.probes tables) ----------------------------------
# Probe tables are qlf.probes metrics rows (feature, row, layer, train_loss, test_loss, ...) with
# the model's coordinate added (budget or step, task; seed for random-init baselines). The
# selection below is the one qlf.probes uses (it is not imported: plots never import torch).

PROBE_NEEDS = ["task", "feature", "row", "layer", "train_loss", "test_loss"]
GROUP_COLORS = {"beginning": "C0", "middle": "C1", "end": "C2"}
MIN_LOSS = 1e-12  # floor for logs (an exactly separable probe has test loss ~0)


def _mean_loss(values) -> float:
    """Arithmetic mean, floored at MIN_LOSS for the log axis."""
    values = np.asarray(values, float)
    return max(float(values.mean()), MIN_LOSS) if len(values) else math.nan


def probe_group_curves(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per (task, feature, group, x): the mean over the group's rows of the test loss at each
    row's best layer by train loss. Columns task, feature, group, x, loss.

    The arithmetic mean is the statistic qlf.probes.classify_features tests (when every example
    has every row), so a panel and its verdict agree; the paper's figure takes the geometric
    mean, where one near-zero row (addition's retrieve_first_op row 0: 0.01 vs 0.04 nats)
    outweighs the rest."""
    from .probes import best_layer_table, position_groups  # not at import: it loads torch

    best = best_layer_table(df, ["task", x, "feature", "row"])
    out = []
    for (task, feature), frame in best.groupby(["task", "feature"], sort=False):
        n_rows = int(df[(df.task == task) & (df.feature == feature)].row.max()) + 1
        for group, rows in position_groups(n_rows).items():
            inside = frame[frame.row.isin(rows)]
            for value, pts in inside.groupby(x, sort=True):
                out.append({"task": task, "feature": feature, "group": group, x: value,
                            "loss": _mean_loss(pts.test_loss)})
    return pd.DataFrame(out, columns=["task", "feature", "group", x, "loss"])


def probe_group_baselines(baseline_df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, feature, group): the random-init level. Per seed, the mean over the group's
    rows of each row's best-layer (by train loss) test loss; loss = the mean over seeds, lo / hi
    = the lowest / highest seed. Columns task, feature, group, loss, lo, hi."""
    from .probes import best_layer_table, position_groups  # not at import: it loads torch

    best = best_layer_table(baseline_df, ["task", "seed", "feature", "row"])
    out = []
    for (task, feature), frame in best.groupby(["task", "feature"], sort=False):
        n_rows = int(baseline_df[(baseline_df.task == task)
                                 & (baseline_df.feature == feature)].row.max()) + 1
        for group, rows in position_groups(n_rows).items():
            inside = frame[frame.row.isin(rows)]
            if len(inside):
                per_seed = inside.groupby("seed").test_loss.apply(_mean_loss)
                out.append(dict(task=task, feature=feature, group=group,
                                loss=_mean_loss(per_seed), lo=per_seed.min(), hi=per_seed.max()))
    return pd.DataFrame(out, columns=["task", "feature", "group", "loss", "lo", "hi"])


def _probe_ylabel(df: pd.DataFrame) -> str:
    kinds = set(df["kind"]) if "kind" in df.columns else set()
    return "probe test MSE" if kinds == {"regression"} else "probe test log loss"


def _draw_feature(ax: Axes, curves: pd.DataFrame, baselines: pd.DataFrame, x: str,
                  zero_at: float | None = None) -> None:
    """Group lines (solid) and random-init levels (dotted: the seeds' mean; shaded: from the
    lowest to the highest seed) of one feature; with zero_at, x = 0 (the initialisation) is drawn
    there as a separate hollow marker."""
    for group, color in GROUP_COLORS.items():
        pts = curves[curves.group == group].sort_values(x)
        if zero_at is not None:
            init = pts[pts[x] == 0]
            ax.plot(np.full(len(init), zero_at), init.loss, "o", mfc="none", color=color)
            pts = pts[pts[x] > 0]
        if len(pts):
            ax.plot(pts[x], pts.loss, "o-", color=color, ms=3, label=group)
        level = baselines[baselines.group == group]
        if len(level):
            level = level.iloc[0]
            ax.axhline(float(level.loss), color=color, ls=":", lw=1.2)
            ax.axhspan(float(level.lo), float(level.hi), color=color, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(numticks=8))
    ax.xaxis.set_minor_locator(NullLocator())
    _plain_log_y(ax)


def _plain_log_y(ax: Axes) -> None:
    """Log y with 0.2 / 0.5 style labels (narrow, readable over less than a decade)."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(PLAIN)
    ax.yaxis.set_minor_formatter(PLAIN)
    ax.tick_params(which="both", labelsize=7)


def _verdict_title(feature: str, verdicts: pd.DataFrame | None, task: str) -> str:
    if verdicts is None or verdicts.empty:
        return feature
    mine = verdicts[(verdicts.task == task) & (verdicts.feature == feature)]
    words = [f"{g}: {v}" for g, v in zip(mine.group, mine.verdict)]
    return feature + ("\n" + ", ".join(words) if words else "")


def _probe_pages(df: pd.DataFrame, baseline_df: pd.DataFrame, x: str):
    """Yield (task, figure, {feature: axes}) with one panel per feature, three per row."""
    _check_columns(df, PROBE_NEEDS + [x], "probe table")
    _check_columns(baseline_df, PROBE_NEEDS + ["seed"], "probe baseline table")
    if df.empty:
        raise ValueError("probe table: empty")
    curves, levels = probe_group_curves(df, x), probe_group_baselines(baseline_df)
    tasks = list(dict.fromkeys(df.task))
    for task in [t for t in TASK_TITLES if t in tasks] + [t for t in tasks if t not in TASK_TITLES]:
        features = list(dict.fromkeys(df[df.task == task].feature))
        ncols = min(3, len(features))
        nrows = math.ceil(len(features) / ncols)
        fig = Figure(figsize=(4.2 * ncols, 3.3 * nrows + 0.6))
        fig.subplots_adjust(left=0.9 / (4.2 * ncols), right=1 - 0.9 / (4.2 * ncols),
                            bottom=0.55 / (3.3 * nrows + 0.6), top=1 - 1.1 / (3.3 * nrows + 0.6),
                            wspace=0.75, hspace=0.6)
        fig.suptitle(TASK_TITLES.get(task, task))
        panels = {}
        for i, feature in enumerate(features):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            mine = (curves.task == task) & (curves.feature == feature)
            base = levels[(levels.task == task) & (levels.feature == feature)]
            panels[feature] = (ax, curves[mine], base)
            ax.set_ylabel(_probe_ylabel(df[(df.task == task) & (df.feature == feature)]),
                          fontsize=8)
        yield task, fig, panels


def _write_pages(pages, pdf_path, title: str) -> Path:
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    subject = "; ".join(f"{task}:{feature}" for task, _, panels in pages for feature in panels)
    with PdfPages(pdf_path, metadata={"Title": title, "Subject": subject}) as pdf:
        for _, fig, _ in pages:
            pdf.savefig(fig)
    return pdf_path


def quiet_loud_figures(across_df: pd.DataFrame, baseline_df: pd.DataFrame,
                       verdicts_df: pd.DataFrame | None = None,
                       frontier_df: pd.DataFrame | None = None,
                       transitions_df: pd.DataFrame | None = None):
    """[(task, Figure, {feature: (probe axes, val-loss twin axes or None)})] for plot_quiet_loud."""
    pages = []
    for task, fig, panels in _probe_pages(across_df, baseline_df, "budget"):
        size = across_df[across_df.task == task]["size"].iloc[0] if "size" in across_df else None

        def of_task(table):
            rows = table[table.task == task]
            return rows[rows["size"] == size] if size is not None and "size" in rows else rows

        drawn = {}
        for feature, (ax, curves, base) in panels.items():
            _draw_feature(ax, curves, base, "budget")
            ax.set_title(_verdict_title(feature, verdicts_df, task), fontsize=8)
            ax.set_xlabel("Training FLOPs", fontsize=8)
            if transitions_df is not None:
                _check_columns(transitions_df, ["task", "transition_budget"], "transitions")
                for c in of_task(transitions_df).transition_budget:
                    if np.isfinite(c):
                        ax.axvline(c, color="red", ls="--", lw=1, label="transition")
            twin = None
            if frontier_df is not None:
                _check_columns(frontier_df, ["task", "budget", "val_loss"], "frontier")
                pts = of_task(frontier_df).sort_values("budget")
                if len(pts):
                    twin = _loss_twin(ax, pts.budget, pts.val_loss, "compute-optimal val loss")
            drawn[feature] = (ax, twin)
        first = next(iter(drawn.values()))[0]
        first.legend(fontsize=6, loc="lower left")
        pages.append((task, fig, drawn))
    return pages


def plot_quiet_loud(across_df: pd.DataFrame, baseline_df: pd.DataFrame,
                    verdicts_df: pd.DataFrame | None, frontier_df: pd.DataFrame | None,
                    transitions_df: pd.DataFrame | None, pdf_path: str | Path) -> Path:
    """Probe test loss against training FLOPs, one page per task and one panel per feature.

    across_df: probe metrics of the trained models with task and budget columns (size optional);
    baseline_df: random-init probe metrics with task and seed. Lines: the beginning / middle /
    end rows (mean of each row's best-layer-by-train-loss test loss); dotted: the random-init
    level of each group (shaded: the range over seeds); red dashed: the task's transition; gray
    (right axis): the compute-optimal val loss; title: the verdicts of
    qlf.probes.classify_features.
    """
    pages = quiet_loud_figures(across_df, baseline_df, verdicts_df, frontier_df, transitions_df)
    return _write_pages(pages, pdf_path, "Quiet and loud features")


def probe_advantage(across_df: pd.DataFrame, baseline_df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, feature, group, budget): advantage = the random-init level minus the trained
    model's probe loss (both as probe_group_curves / probe_group_baselines compute them), in the
    probe's loss units; > 0 where the model's residual stream holds the feature better than a
    random initialisation's. Columns task, feature, group, budget, loss, baseline, advantage."""
    _check_columns(across_df, PROBE_NEEDS + ["budget"], "probe table")
    _check_columns(baseline_df, PROBE_NEEDS + ["seed"], "probe baseline table")
    if across_df.empty:
        raise ValueError("probe table: empty")
    curves = probe_group_curves(across_df, "budget")
    levels = probe_group_baselines(baseline_df)[["task", "feature", "group", "loss"]]
    out = curves.merge(levels.rename(columns={"loss": "baseline"}), how="left",
                       on=["task", "feature", "group"], validate="many_to_one")
    return out.assign(advantage=out.baseline - out.loss)


def _grid_rows(frame: pd.DataFrame, features: list, verdicts: pd.DataFrame | None, task: str):
    """Row keys (feature, group) in the probe table's feature order, and their labels with the
    verdict."""
    keys = list(dict.fromkeys(zip(frame.feature, frame.group)))
    order = {g: i for i, g in enumerate(GROUP_COLORS)}
    keys.sort(key=lambda k: (features.index(k[0]), order.get(k[1], len(order))))
    said = {}
    if verdicts is not None and len(verdicts):
        mine = verdicts[verdicts.task == task]
        said = {(f, g): v for f, g, v in zip(mine.feature, mine.group, mine.verdict)}
    labels = [f"{f} · {g}" + (f"  [{said[(f, g)]}]" if (f, g) in said else "") for f, g in keys]
    return keys, labels


def quiet_loud_grid(across_df: pd.DataFrame, baseline_df: pd.DataFrame,
                    verdicts_df: pd.DataFrame | None = None,
                    transitions_df: pd.DataFrame | None = None):
    """The quiet/loud verdicts at a glance: per task a heatmap of probe_advantage, one row per
    (feature, position group), one column per training budget, colour and number = the advantage
    (blue: the model beats random inits; red: worse). The row label carries the verdict; a black
    box marks the onset budget of qlf.probes.classify_features (the first budget whose CI clears
    zero); a red dashed line stands before the task's transition budget. Returns the figure and
    task -> (axes, the plotted table: rows (feature, group), columns budget)."""
    adv = probe_advantage(across_df, baseline_df)
    if verdicts_df is not None:
        _check_columns(verdicts_df, ["task", "feature", "group", "verdict", "onset_budget"],
                       "verdicts")
    if transitions_df is not None:
        _check_columns(transitions_df, ["task", "transition_budget"], "transitions")
    tasks = list(dict.fromkeys(adv.task))
    tasks = [t for t in TASK_TITLES if t in tasks] + [t for t in tasks if t not in TASK_TITLES]
    tables = {}
    for task in tasks:
        frame = adv[adv.task == task]
        features = list(dict.fromkeys(across_df[across_df.task == task].feature))
        keys, labels = _grid_rows(frame, features, verdicts_df, task)
        table = frame.pivot(index=["feature", "group"], columns="budget", values="advantage")
        tables[task] = (table.reindex(pd.MultiIndex.from_tuples(keys, names=["feature", "group"])),
                        labels)
    ncols = max(len(t.columns) for t, _ in tables.values())
    label_in = 0.065 * max(len(lab) for _, labels in tables.values() for lab in labels) + 0.3
    heights = [0.3 * len(t) + 0.9 for t, _ in tables.values()]
    width = label_in + 0.62 * ncols + 1.3
    fig = Figure(figsize=(max(width, 6.5), sum(heights) + 0.75))
    fig.suptitle("Probe advantage over random initialisation (random-init loss minus model loss)",
                 fontsize=10)
    fig.text(0.5, 0.01, "[verdict] of quiet_loud.csv; gold box: its onset budget (first CI above "
             "zero); red dashed: the task's transition", ha="center", va="bottom", fontsize=7)
    w, h = fig.get_size_inches()
    grid = fig.add_gridspec(len(tasks), 2, height_ratios=heights, width_ratios=[1, 0.04],
                            left=label_in / w, right=1 - 0.75 / w, top=1 - 0.55 / h,
                            bottom=0.6 / h, hspace=0.9 / np.mean(heights), wspace=0.08)
    panels = {}
    for i, task in enumerate(tasks):
        table, labels = tables[task]
        ax, cax = fig.add_subplot(grid[i, 0]), fig.add_subplot(grid[i, 1])
        span = float(np.nanmax(np.abs(table.to_numpy()))) if table.notna().any().any() else 1.0
        sns.heatmap(table, ax=ax, cbar_ax=cax, cmap="RdBu", center=0, vmin=-span, vmax=span,
                    annot=True, fmt=".2f", annot_kws={"fontsize": 7}, linewidths=0.5,
                    linecolor="white", xticklabels=[format_budget(b) for b in table.columns],
                    yticklabels=labels)
        cax.tick_params(labelsize=7)
        cax.set_ylabel(_probe_ylabel(across_df[across_df.task == task]).replace("probe test ", "")
                       + " advantage", fontsize=7)
        ax.set_title(TASK_TITLES.get(task, task), fontsize=9, loc="left")
        ax.set_xlabel("Training FLOPs", fontsize=8)
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelsize=7, rotation=0)
        ax.tick_params(axis="x", labelsize=7, rotation=0)
        budgets = list(table.columns)
        if verdicts_df is not None:
            mine = verdicts_df[verdicts_df.task == task]
            for f, g, onset in zip(mine.feature, mine.group, mine.onset_budget):
                if (f, g) in table.index and np.isfinite(onset) and onset in budgets:
                    r, c = table.index.get_loc((f, g)), budgets.index(onset)
                    ax.add_patch(Rectangle((c + 0.04, r + 0.06), 0.92, 0.88, fill=False,
                                           ec="gold", lw=2.2))
            for text in ax.get_yticklabels():  # the decided rows stand out
                if text.get_text().endswith(("[quiet]", "[loud]")):
                    text.set_fontweight("bold")
        if transitions_df is not None:
            for t in transitions_df[transitions_df.task == task].transition_budget:
                if np.isfinite(t):  # before the first column at or after the transition
                    c = int(np.searchsorted(np.asarray(budgets, float), t * (1 - 1e-9)))
                    ax.axvline(c, color="red", ls="--", lw=1.5, label="transition")
        panels[task] = (ax, table)
    return fig, panels


def plot_quiet_loud_grid(across_df: pd.DataFrame, baseline_df: pd.DataFrame,
                         verdicts_df: pd.DataFrame | None, transitions_df: pd.DataFrame | None,
                         pdf_path: str | Path) -> Path:
    """Write quiet_loud_grid (one page) to `pdf_path`; its Subject metadata lists the rows as
    'task:feature/group,...; ...'."""
    fig, panels = quiet_loud_grid(across_df, baseline_df, verdicts_df, transitions_df)
    subject = "; ".join(f"{task}:" + ",".join(f"{f}/{g}" for f, g in table.index)
                        for task, (_, table) in panels.items())
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Title": "Quiet and loud features: probe advantage", "Subject": subject}
    with PdfPages(pdf_path, metadata=metadata) as pdf:
        pdf.savefig(fig)
    return pdf_path


def _loss_twin(ax: Axes, x, loss, label: str) -> Axes:
    """A gray model-loss line on a right-hand log axis of `ax`."""
    twin = ax.twinx()
    twin.plot(x, loss, "s--", color="gray", ms=3, lw=1)
    _plain_log_y(twin)
    twin.set_ylabel(label, fontsize=7, color="gray")
    twin.tick_params(which="both", colors="gray")
    return twin


def within_run_figures(within_df: pd.DataFrame, baseline_df: pd.DataFrame,
                       val_df: pd.DataFrame | None = None):
    """[(task, Figure, {feature: (probe axes, val-loss twin axes or None)})] for
    plot_within_run."""
    pages = []
    for task, fig, panels in _probe_pages(within_df, baseline_df, "step"):
        steps = within_df[within_df.task == task].step.to_numpy(float)
        if (steps < 0).any():
            raise ValueError(f"within-run table: {task} has negative steps")
        positive = steps[steps > 0]
        zero_at = positive.min() / 2 if len(positive) else 0.5
        curve = None
        if val_df is not None:
            _check_columns(val_df, ["task", "step", "val_loss"], "val curves")
            curve = val_df[(val_df.task == task) & (val_df.step > 0)].sort_values("step")
        drawn = {}
        for feature, (ax, curves, base) in panels.items():
            _draw_feature(ax, curves, base, "step", zero_at=zero_at)
            ax.set_title(feature, fontsize=8)
            ax.set_xlabel(f"optimizer step (hollow: step 0 at {zero_at:g})", fontsize=8)
            twin = None
            if curve is not None and len(curve):
                twin = _loss_twin(ax, curve.step, curve.val_loss, "the run's val loss")
            drawn[feature] = (ax, twin)
        next(iter(drawn.values()))[0].legend(fontsize=6, loc="lower left")
        pages.append((task, fig, drawn))
    return pages


def plot_within_run(within_df: pd.DataFrame, baseline_df: pd.DataFrame,
                    pdf_path: str | Path, val_df: pd.DataFrame | None = None) -> Path:
    """Probe test loss against the optimizer step of one run, as plot_quiet_loud (log x; the
    initialisation, step 0, is a hollow marker at half the first saved step).

    within_df: probe metrics of the run's checkpoints with task and step columns; baseline_df:
    random-init probe metrics with task and seed columns; val_df (optional): the run's
    validation curve (qlf.scaling.val_curves: task, step, val_loss), gray on the right axis."""
    return _write_pages(within_run_figures(within_df, baseline_df, val_df), pdf_path,
                        "Features within one run")


# -- ablation figure (qlf.ablations summary table) -------------------------------------------------

ABLATION_CONDITIONS = {"baseline": ("no intervention", "0.55"),
                       "ablated": ("feature ablated", "C3"),
                       "control": ("random control, matched shift", "C0"),
                       "ref_control": ("random control, reference (probe offset kept)", "C2")}
ABLATION_NEEDS = ["task", "feature"] + [f"{c}_acc{s}" for c in ABLATION_CONDITIONS
                                        for s in ("", "_lo", "_hi")]
ABLATION_PANEL_H, TOP_K_PANEL_H = 3.4, 2.4  # inches per row of bar / top-k panels


def _ablation_seeds(summary_df: pd.DataFrame) -> list:
    return sorted(summary_df.train_seed.unique()) if "train_seed" in summary_df.columns else [None]


def _ablation_bars(ax: Axes, rows: pd.DataFrame, seed_key: list[str]) -> None:
    """Per feature, a bar per condition (mean over training seeds); one seed: its CI whisker,
    several: each seed a dot with its CI."""
    features = list(dict.fromkeys(rows.feature))
    x = np.arange(len(features))
    bar = 0.8 / len(ABLATION_CONDITIONS)
    for j, (cond, (label, color)) in enumerate(ABLATION_CONDITIONS.items()):
        # (feature, seed) tables of the accuracy and its CI ends
        table = {s: rows.pivot_table(index="feature", columns=seed_key or None,
                                     values=f"{cond}_acc{s}", aggfunc="first", dropna=False)
                 .reindex(features) for s in ("", "_lo", "_hi")}
        acc, lo, hi = (np.atleast_2d(table[s].to_numpy(float).T).T for s in ("", "_lo", "_hi"))
        centre = x + (j - (len(ABLATION_CONDITIONS) - 1) / 2) * bar
        one = acc.shape[1] == 1
        err = np.nan_to_num(np.stack([acc - lo, hi - acc]).clip(min=0))  # no CI: no whisker
        ax.bar(centre, acc.mean(axis=1), bar, color=color, label=label,
               alpha=1.0 if one else 0.45,
               **(dict(yerr=err[:, :, 0], error_kw=dict(lw=0.8, capsize=2)) if one else {}))
        if not one:  # each seed a dot with its CI, spread across the bar
            offsets = np.linspace(-0.3, 0.3, acc.shape[1]) * bar
            for k, off in enumerate(offsets):
                ax.errorbar(centre + off, acc[:, k], yerr=err[:, :, k], fmt="o", ms=2.5,
                            color=color, ecolor="black", elinewidth=0.6, capsize=1)
    ax.set_xticks(x, features, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.tick_params(axis="y", labelsize=8)


def _ablation_top_k(ax: Axes, rows: pd.DataFrame, n_seeds: int) -> None:
    """Per feature, ablated accuracy against k (mean over training seeds; band: the CI with one
    seed, the seeds' range with several) and its no-intervention level (dotted)."""
    features = list(dict.fromkeys(rows.feature))
    palette = dict(zip(features, sns.color_palette("colorblind", len(features))))
    for feature in features:
        one = rows[rows.feature == feature]
        by_k = one.groupby("k")
        k = np.array(sorted(one.k.unique()), dtype=float)
        mean = by_k.ablated_acc.mean().reindex(k).to_numpy(float)
        if n_seeds == 1:
            lo = by_k.ablated_acc_lo.first().reindex(k).to_numpy(float)
            hi = by_k.ablated_acc_hi.first().reindex(k).to_numpy(float)
        else:
            lo = by_k.ablated_acc.min().reindex(k).to_numpy(float)
            hi = by_k.ablated_acc.max().reindex(k).to_numpy(float)
        color = palette[feature]
        ax.plot(k, mean, "o-", color=color, ms=3, lw=1.2, label=feature)
        ax.fill_between(k, lo, hi, color=color, alpha=0.2, lw=0)
        ax.axhline(one.baseline_acc.mean(), color=color, ls=":", lw=1)
    ax.set_xticks(sorted(rows.k.unique()))
    ax.set_ylim(0, 1.05)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("k: best layers ablated per probe row", fontsize=7)
    handles = ax.get_legend_handles_labels()[0]
    handles.append(Line2D([], [], color="0.3", ls=":", lw=1, label="no intervention"))
    ax.legend(handles=handles, fontsize=6, loc="best", frameon=False)


def ablations_figure(summary_df: pd.DataFrame):
    """Per task (the paper's order): a bar panel of greedy exact-match accuracy per feature at
    the smallest k of the table (k = 1: the best layer per probe row) under no intervention, the
    feature ablation, the matched random control and the reference's random control (means over
    trials), with bootstrap 95% CIs as whiskers; with a `train_seed` column holding several seeds
    (one row per task, feature, k and seed) a bar is the mean over seeds and each seed is a dot
    inside it with its own CI. When the table holds several k, a panel below each shows the
    ablated accuracy against k. Returns the figure, task -> bar axes and task -> top-k axes
    (empty with one k)."""
    _check_columns(summary_df, ABLATION_NEEDS, "plot_ablations: summary")
    if summary_df.empty:
        raise ValueError("plot_ablations: the summary is empty")
    seed_key = ["train_seed"] if "train_seed" in summary_df.columns else []
    key = ["task", "feature"] + (["k"] if "k" in summary_df.columns else []) + seed_key
    repeated = summary_df.duplicated(key)
    if repeated.any():
        raise ValueError(f"plot_ablations: ({', '.join(key)}) repeats: "
                         f"{summary_df.loc[repeated, key].values.tolist()}; "
                         "give one row each (filter the budget or size first)")
    ks = sorted(summary_df.k.unique()) if "k" in summary_df.columns else [None]
    headline = summary_df if ks[0] is None else summary_df[summary_df.k == ks[0]]
    curves = len(ks) > 1
    seeds = _ablation_seeds(summary_df)
    order = _task_order(summary_df, None)
    ncols = min(MAX_COLUMNS, len(order))
    nrows = math.ceil(len(order) / ncols)
    heights = [ABLATION_PANEL_H] + ([TOP_K_PANEL_H] if curves else [])
    # at least 6.4 inches wide: the title and the legend do not fit one 3.4-inch panel
    fig = Figure(figsize=(max(3.4 * ncols, 6.4), 0.7 + nrows * sum(heights)))
    width, height = fig.get_size_inches()
    at_k = "" if ks[0] is None else f" at k = {ks[0]}"
    fig.suptitle(f"Feature ablations{at_k}: accuracy (95% bootstrap CI)" if len(seeds) == 1 else
                 f"Feature ablations{at_k}: mean accuracy of {len(seeds)} training seeds "
                 "(dots: seeds, 95% CI)", fontsize=10, y=1 - 0.12 / height, va="top")
    grid = fig.add_gridspec(nrows * len(heights), ncols, height_ratios=heights * nrows,
                            left=0.8 / width, right=1 - 0.15 / width, bottom=1.0 / height,
                            top=1 - 0.7 / height, hspace=0.6, wspace=0.3)
    bars, tops = {}, {}
    for i, task in enumerate(order):
        r, c = divmod(i, ncols)
        ax = fig.add_subplot(grid[r * len(heights), c])
        _ablation_bars(ax, headline[headline.task == task], seed_key)
        ax.set_title(TASK_TITLES.get(task, task), fontsize=10)
        if c == 0:
            ax.set_ylabel("exact-match accuracy", fontsize=8)
        bars[task] = ax
        if curves:
            top = fig.add_subplot(grid[r * len(heights) + 1, c])
            _ablation_top_k(top, summary_df[summary_df.task == task], len(seeds))
            if c == 0:
                top.set_ylabel("accuracy, ablated", fontsize=8)
            tops[task] = top
    fig.legend(*bars[order[0]].get_legend_handles_labels(), loc="lower center",
               ncol=4 if width >= 10 else 2, fontsize=7, frameon=False)
    return fig, bars, tops


def plot_ablations(summary_df: pd.DataFrame, pdf_path: str | Path) -> Path:
    """Write ablations_figure (one page) to `pdf_path`; its Subject metadata lists the panels as
    'task:feature,feature; ...'."""
    fig, panels, _ = ablations_figure(summary_df)
    subject = "; ".join(f"{task}:" + ",".join(dict.fromkeys(summary_df[summary_df.task == task]
                                                           .feature)) for task in panels)
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(pdf_path, metadata={"Title": "Feature ablations", "Subject": subject}) as pdf:
        pdf.savefig(fig)
    return pdf_path


# -- early-warning figure (qlf.monitor.early_warning table) ----------------------------------------

EARLY_WARNING_NEEDS = ["task", "budget", "run_id", "feature", "flops", "steps", "drop_flops",
                       "val_exit_flops"]


def early_warning_figure(warnings_df: pd.DataFrame) -> tuple[Figure, dict[str, Axes]]:
    """One panel per task: a row per frontier run (its budget), a line over the run's training
    compute, and on it where each feature's probe loss first drops clearly below its random-init
    value (coloured dots) and where the run's val loss leaves its plateau (black cross). A dot
    left of the cross is a feature learned while the loss was still flat; the gap is the lead in
    decades of compute. Returns the figure and task -> axes."""
    _check_columns(warnings_df, EARLY_WARNING_NEEDS, "plot_early_warning")
    if warnings_df.empty:
        raise ValueError("plot_early_warning: the table has no rows")
    order = _task_order(warnings_df, None)
    features = list(dict.fromkeys(warnings_df.feature))
    palette = dict(zip(features, sns.color_palette("colorblind", len(features))))
    ncols = min(3, len(order))
    nrows = math.ceil(len(order) / ncols)
    fig = Figure(figsize=(max(4.2 * ncols, 6.0), 0.6 + 2.8 * nrows))
    fig.suptitle("Early warning: probe loss drop (dots) vs val loss leaving its plateau (x)",
                 fontsize=11)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.2 / width, bottom=1.2 / height,
                        top=1 - 0.6 / height, hspace=0.7, wspace=0.35)
    panels = {}
    for i, task in enumerate(order):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        rows = warnings_df[warnings_df.task == task]
        budgets = sorted(rows.budget.unique())
        offsets = np.linspace(-0.2, 0.2, len(features)) if len(features) > 1 else [0.0]
        for y, budget in enumerate(budgets):
            run = rows[rows.budget == budget]
            first = run.iloc[0]
            ax.plot([first.flops / first.steps, first.flops], [y, y], color="0.75", lw=1.5,
                    zorder=1)
            if np.isfinite(first.val_exit_flops):
                ax.scatter([first.val_exit_flops], [y], marker="x", color="black", s=40,
                           zorder=3)
            for off, feature in zip(offsets, features):
                hit = run[(run.feature == feature) & np.isfinite(run.drop_flops)]
                ax.scatter(hit.drop_flops, np.full(len(hit), y + off), color=palette[feature],
                           s=22, zorder=2)
        ax.set_xscale("log")
        ax.set_yticks(range(len(budgets)), [format_budget(b) for b in budgets], fontsize=8)
        ax.set_ylim(-0.6, len(budgets) - 0.4)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("training FLOPs so far", fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel("run (budget)", fontsize=8)
        ax.set_title(TASK_TITLES.get(task, task), fontsize=10)
        panels[task] = ax
    handles = [Line2D([], [], ls="", marker="o", color=palette[f], label=f"{f}: probe drop")
               for f in features]
    handles.append(Line2D([], [], ls="", marker="x", color="black",
                          label="val loss leaves plateau"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7,
               frameon=False)
    return fig, panels


def plot_early_warning(warnings_df: pd.DataFrame, pdf_path: str | Path) -> Path:
    """early_warning_figure to a PDF (Subject metadata: the panels' tasks)."""
    fig, panels = early_warning_figure(warnings_df)
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(pdf_path, metadata={"Title": "Early warning",
                                      "Subject": "; ".join(panels)}) as pdf:
        pdf.savefig(fig)
    return pdf_path


# -- paper comparison figure (qlf.comparison.paper_comparison table) -------------------------------

COMPARISON_NEEDS = ["kind", "task", "item", "paper", "ours", "ours_low", "ours_high", "agree",
                    "paper_size", "our_size"]
AGREE_COLORS = {"yes": "#1b9e77", "no": "#d95f02", "not reached by this config": "0.55",
                "not measured": "0.75"}
VERDICT_COLORS = {"quiet": "#7570b3", "loud": "#e7298a", "mixed": "0.65", "neither": "0.8",
                  "no transition": "0.9"}
_COMPARISON_PANELS = {"transition": "Transition budget (FLOPs; band: paper ±1 decade)",
                      "verdict": "Quiet / loud verdict",
                      "ablation_drop": "Accuracy drop when the feature is ablated (relative)"}


def _comparison_label(row) -> str:
    label = TASK_TITLES.get(row.task, row.task)
    if row.kind != "transition":
        label += f": {row.item}"
    ours, paper = row.our_size, row.paper_size
    if pd.notna(ours) and pd.notna(paper) and int(ours) != int(paper):
        label += f" (size {int(ours)}; paper {int(paper)})"
    return label


def _agree_column(ax: Axes, rows: pd.DataFrame) -> None:
    """The agreement of each row as coloured text right of the panel."""
    for y, agree in enumerate(rows.agree):
        ax.text(1.02, y, agree, transform=ax.get_yaxis_transform(), va="center", fontsize=7,
                color=AGREE_COLORS.get(agree, "black"), clip_on=False)


def _numeric(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(float)


def _draw_transitions(ax: Axes, rows: pd.DataFrame) -> None:
    y = np.arange(len(rows))
    paper, ours = _numeric(rows.paper), _numeric(rows.ours)
    low, high = _numeric(rows.ours_low), _numeric(rows.ours_high)
    ax.barh(y, paper * 10 - paper / 10, left=paper / 10, height=0.5, color="0.9", zorder=0)
    ax.scatter(paper, y, marker="D", color="black", s=22, zorder=3, label="paper")
    colors = [AGREE_COLORS.get(a, "black") for a in rows.agree]
    ax.hlines(y, low, high, colors=colors, lw=1.5, zorder=2)
    ax.scatter(ours, y, marker="o", color=colors, s=30, zorder=4, label="ours")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=20))
    ax.xaxis.set_minor_locator(NullLocator())
    finite = np.concatenate([paper / 10, paper * 10, ours[np.isfinite(ours)],
                             low[np.isfinite(low)], high[np.isfinite(high)]])
    ax.set_xlim(finite.min() / 3, finite.max() * 3)


def _draw_verdicts(ax: Axes, rows: pd.DataFrame) -> None:
    for y, row in enumerate(rows.itertuples(index=False)):
        for x, value in ((0, row.paper), (1, row.ours)):
            text = value if isinstance(value, str) and value else "–"
            ax.add_patch(Rectangle((x - 0.45, y - 0.38), 0.9, 0.76,
                                   color=VERDICT_COLORS.get(text, "white"), lw=0))
            ax.text(x, y, text, ha="center", va="center", fontsize=7,
                    color="white" if text in ("quiet", "loud") else "black")
    ax.set_xlim(-0.5, 1.5)
    ax.set_xticks([0, 1], ["paper", "ours"], fontsize=8)
    ax.xaxis.tick_top()
    ax.grid(False)


def _draw_drops(ax: Axes, rows: pd.DataFrame) -> None:
    y = np.arange(len(rows))
    paper, ours = _numeric(rows.paper), _numeric(rows.ours)
    low, high = _numeric(rows.ours_low), _numeric(rows.ours_high)
    colors = [AGREE_COLORS.get(a, "black") for a in rows.agree]
    ax.hlines(y, low, high, colors=colors, lw=1.5, zorder=2)
    for end in (low, high):
        ax.scatter(end, y, marker="|", color=colors, s=40, zorder=2)
    ax.scatter(paper, y, marker="D", color="black", s=22, zorder=3)
    ax.scatter(ours, y, marker="o", color=colors, s=30, zorder=4)
    values = np.concatenate([paper, ours, low, high])
    values = values[np.isfinite(values)]
    ax.set_xlim(min(0.0, values.min()) - 0.05, max(1.0, values.max()) + 0.05)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))


def paper_comparison_figure(table: pd.DataFrame) -> tuple[Figure, dict[str, Axes]]:
    """One panel per kind of number in `table` (results/paper_comparison.csv), a row per number:
    transition budgets on a log axis (the paper's as a black diamond in a ±1 decade band, ours as
    a dot with the seeds' range), the quiet/loud verdicts as paper/ours cells, and ablation drops
    (paper diamond; ours dot with the seeds' range or one seed's CI). Each row's agreement is
    written at its right, coloured as its dot. Returns the figure and kind -> axes."""
    _check_columns(table, COMPARISON_NEEDS, "plot_paper_comparison")
    if table.empty:
        raise ValueError("plot_paper_comparison: the table has no rows")
    kinds = [k for k in _COMPARISON_PANELS if (table.kind == k).any()]
    unknown = sorted(set(table.kind) - set(_COMPARISON_PANELS))
    if unknown:
        raise ValueError(f"plot_paper_comparison: unknown kind {unknown}")
    counts = [int((table.kind == k).sum()) for k in kinds]
    heights = [0.35 + 0.24 * n for n in counts]
    top, bottom, gap = 0.75, 0.55, 0.95  # gap: tick labels, then the next panel's title
    fig = Figure(figsize=(7.5, top + bottom + sum(heights) + gap * (len(kinds) - 1)))
    fig.suptitle("Our numbers vs the paper's (arXiv 2505.03997)", fontsize=11)
    width, height = fig.get_size_inches()
    grid = fig.add_gridspec(len(kinds), 1, height_ratios=heights, left=3.0 / width,
                            right=1 - 1.8 / width, top=1 - top / height, bottom=bottom / height,
                            hspace=gap / (sum(heights) / len(kinds)))
    draw = {"transition": _draw_transitions, "verdict": _draw_verdicts,
            "ablation_drop": _draw_drops}
    panels = {}
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(grid[i])
        rows = table[table.kind == kind].reset_index(drop=True)
        draw[kind](ax, rows)
        ax.set_yticks(range(len(rows)), [_comparison_label(r) for r in rows.itertuples()],
                      fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(_COMPARISON_PANELS[kind], fontsize=9, loc="left",
                     pad=14 if kind == "verdict" else 4)
        _agree_column(ax, rows)
        panels[kind] = ax
    handles = [Line2D([], [], ls="", marker="D", color="black", label="paper")]
    handles += [Line2D([], [], ls="", marker="o", color=c, label=f"ours: {a}")
                for a, c in AGREE_COLORS.items() if a in ("yes", "no")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
               frameon=False)
    return fig, panels


def plot_paper_comparison(table: pd.DataFrame, pdf_path: str | Path) -> Path:
    """paper_comparison_figure to a PDF (Subject metadata: 'kind:agree,agree,...; ...')."""
    fig, panels = paper_comparison_figure(table)
    subject = "; ".join(f"{kind}:" + ",".join(table[table.kind == kind].agree)
                        for kind in panels)
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(pdf_path, metadata={"Title": "Paper comparison", "Subject": subject}) as pdf:
        pdf.savefig(fig)
    return pdf_path
