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
                       "control": ("random control", "C0")}
ABLATION_NEEDS = ["task", "feature"] + [f"{c}_acc{s}" for c in ABLATION_CONDITIONS
                                        for s in ("", "_lo", "_hi")]


def ablations_figure(summary_df: pd.DataFrame) -> tuple[Figure, dict[str, Axes]]:
    """One panel per task (the paper's order): per feature, bars of greedy exact-match accuracy
    under no intervention, the feature ablation and the random control (mean over trials), with
    their bootstrap 95% CIs as whiskers. Returns the figure and task -> axes."""
    _check_columns(summary_df, ABLATION_NEEDS, "plot_ablations: summary")
    if summary_df.empty:
        raise ValueError("plot_ablations: the summary is empty")
    repeated = summary_df.duplicated(["task", "feature"])
    if repeated.any():
        raise ValueError(f"plot_ablations: (task, feature) repeats: "
                         f"{summary_df.loc[repeated, ['task', 'feature']].values.tolist()}; "
                         "give one row per pair (filter the budget or size first)")
    order = _task_order(summary_df, None)
    ncols = min(MAX_COLUMNS, len(order))
    nrows = math.ceil(len(order) / ncols)
    # at least 6 inches wide: the title and the legend do not fit one 3.4-inch panel
    fig = Figure(figsize=(max(3.4 * ncols, 6.0), 3.4 * nrows))
    fig.suptitle("Feature ablations: accuracy (95% bootstrap CI)")
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.15 / width, bottom=1.3 / height,
                        top=1 - 0.6 / height, hspace=0.9, wspace=0.3)
    bar = 0.8 / len(ABLATION_CONDITIONS)
    panels = {}
    for i, task in enumerate(order):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        rows = summary_df[summary_df.task == task]
        x = np.arange(len(rows))
        for j, (cond, (label, color)) in enumerate(ABLATION_CONDITIONS.items()):
            acc = rows[f"{cond}_acc"].to_numpy(float)
            lo, hi = (rows[f"{cond}_acc{s}"].to_numpy(float) for s in ("_lo", "_hi"))
            err = np.nan_to_num(np.stack([acc - lo, hi - acc]).clip(min=0))  # no CI: no whisker
            ax.bar(x + (j - 1) * bar, acc, bar, yerr=err, color=color, label=label,
                   error_kw=dict(lw=0.8, capsize=2))
        ax.set_xticks(x, rows.feature, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(TASK_TITLES.get(task, task), fontsize=10)
        if i % ncols == 0:
            ax.set_ylabel("exact-match accuracy")
        panels[task] = ax
    fig.legend(*panels[order[0]].get_legend_handles_labels(), loc="lower center", ncol=3,
               fontsize=7, frameon=False)
    return fig, panels


def plot_ablations(summary_df: pd.DataFrame, pdf_path: str | Path) -> Path:
    """Write ablations_figure (one page) to `pdf_path`; its Subject metadata lists the panels as
    'task:feature,feature; ...'."""
    fig, panels = ablations_figure(summary_df)
    subject = "; ".join(f"{task}:" + ",".join(summary_df[summary_df.task == task].feature)
                        for task in panels)
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(pdf_path, metadata={"Title": "Feature ablations", "Subject": subject}) as pdf:
        pdf.savefig(fig)
    return pdf_path
