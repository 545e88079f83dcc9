"""One plotting function per paper figure and one builder per table, all drawn from a run's
own logs (see `results.collect_run`) with the paper's published values beside ours.

Every figure carries a caption naming this run's model, profile and data modes, and the
paper's series are labelled "paper, Llama-3.1-8B" so the two are never confused.

The backend is never chosen here: in a notebook (papermill included) figures show inline and
are also saved; a script without a display falls back to Agg by itself."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PAPER_RESULTS = Path(__file__).resolve().parents[1] / "data" / "paper_results.json"
ENV_TITLES = {"webshop": "WebShop", "sciworld": "SciWorld", "textcraft": "TextCraft"}
METHOD_TITLES = {"agent_r": "Agent-R (revision + good)", "direct_revision": "Direct-Revision + good",
                 "good_only": "good only"}
METHOD_COLOURS = {"agent_r": "#d62728", "direct_revision": "#1f77b4", "good_only": "#7f7f7f"}
METHOD_MARKERS = {"agent_r": "o", "direct_revision": "s", "good_only": "D"}
PAPER_LABEL = "paper, Llama-3.1-8B"
SCORE_LABEL = "average final score (0-100)"
#: this run's points are shifted sideways by this much per method, so that equal scores
#: (several lines at 0, say) stay visible instead of hiding each other
DODGE = 0.07


def load_paper_results(path: str | Path = PAPER_RESULTS) -> dict:
    return json.loads(Path(path).read_text())


def caption(meta: dict) -> str:
    """'this run: <model>, backend <b>, profile <p>; data: <env: mode, ...>' -- printed under each figure."""
    modes = ", ".join(f"{ENV_TITLES.get(env, env)}: {mode}" for env, mode in sorted(meta.get("data_modes", {}).items()))
    return (f"this run: {meta.get('model_label', meta.get('model', '?'))}, backend {meta.get('backend', '?')}, "
            f"profile {meta.get('profile', '?')}; data: {modes}")


def save_figure(fig: plt.Figure, figures_dir: str | Path, name: str) -> list[Path]:
    """PNG (for the README) and PDF (for papers) side by side."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / f"{name}.png", figures_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def _finish(fig: plt.Figure, title: str, meta: dict, note: str = "") -> plt.Figure:
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.text(0.5, -0.01, caption(meta) + (f"\n{note}" if note else ""), ha="center", va="top", fontsize=8,
             color="#444")
    return fig


def _dodge(methods: list[str]) -> dict[str, float]:
    """Sideways offset per method, centred on the iteration."""
    return {m: (i - (len(methods) - 1) / 2) * DODGE for i, m in enumerate(methods)}


def _score_axis(ax: plt.Axes, iterations: list[int], xlabel: str) -> None:
    """Integer iteration ticks; the y-axis starts a little below 0 so lines at 0 and their
    markers are not hidden by the spine."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(SCORE_LABEL)
    ax.set_xticks(iterations)
    ax.set_xlim(min(iterations) - 0.35, max(iterations) + 0.35)
    top = max(10.0, ax.get_ylim()[1])
    ax.set_ylim(-0.04 * top, top)
    ax.axhline(0, color="#ccc", lw=0.6, zorder=0)
    ax.grid(axis="y", alpha=0.3)


def _legend_right(fig: plt.Figure, axes) -> None:
    """One legend for all panels, outside on the right (it never covers a line)."""
    handles, labels = {}, {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
            labels[label] = label
    fig.legend(list(handles.values()), list(labels), loc="upper left", bbox_to_anchor=(1.0, 0.93), fontsize=7,
               frameon=False)


#: legend entry of this run's error bars
INTERVAL_LABEL = "this run: 95% bootstrap interval over the test goals"


def _error_bars(ax: plt.Axes, x, frame: pd.DataFrame, colour: str) -> None:
    """Error bars of this run's points: the 95% bootstrap interval over goals (score_lo,
    score_hi from results.collect_run); nothing when the run has no per-episode logs."""
    if "score_lo" not in frame or frame["score_lo"].isna().all():
        return
    below = (frame["score"] - frame["score_lo"]).clip(lower=0).fillna(0)
    above = (frame["score_hi"] - frame["score"]).clip(lower=0).fillna(0)
    first = INTERVAL_LABEL not in ax.get_legend_handles_labels()[1]
    ax.errorbar(x, frame["score"], yerr=[below.to_numpy(), above.to_numpy()], fmt="none", ecolor=colour,
                elinewidth=1, capsize=3, alpha=0.6, zorder=2, clip_on=False, label=INTERVAL_LABEL if first else None)


def _paper_table6(paper: dict, mode: str = "M") -> pd.DataFrame:
    rows = [row for row in paper["table6_single_vs_multi"] if row["mode"] == mode]
    return pd.DataFrame(rows).melt(id_vars=["method", "iteration", "mode"], var_name="env", value_name="score")


def figure3_training_trajectories(scores: pd.DataFrame, paper: dict, meta: dict) -> plt.Figure:
    """Score vs iteration, one panel per environment, one line per kind of training data.
    `scores`: columns method, mode, iteration, env, score (x100); iteration 0 = base model."""
    envs = sorted(scores["env"].unique())
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.6), squeeze=False)
    multi = scores[scores["mode"] == "M"]
    base = multi[multi["iteration"] == 0]
    paper_rows = _paper_table6(paper)
    methods = [m for m in METHOD_TITLES if m in set(multi["method"])]
    offsets = _dodge(methods)
    for ax, env in zip(axes[0], envs):
        for method in methods:
            ours = multi[(multi["env"] == env) & (multi["method"].isin([method, "base"]))]
            ours = pd.concat([base[base["env"] == env], ours[ours["method"] == method]]).sort_values("iteration")
            ax.plot(ours["iteration"] + offsets[method], ours["score"], marker=METHOD_MARKERS[method], ms=6,
                    color=METHOD_COLOURS[method], clip_on=False, zorder=3,
                    label=f"{METHOD_TITLES[method]} (this run)")
            _error_bars(ax, ours["iteration"] + offsets[method], ours, METHOD_COLOURS[method])
            theirs = paper_rows[(paper_rows["method"] == method) & (paper_rows["env"] == env)]
            if not theirs.empty:
                ax.plot(theirs["iteration"], theirs["score"], ls="--", marker="x", alpha=0.6, clip_on=False,
                        color=METHOD_COLOURS[method], label=f"{METHOD_TITLES[method]} ({PAPER_LABEL})")
        ax.set_title(ENV_TITLES.get(env, env))
        _score_axis(ax, sorted(int(i) for i in multi["iteration"].unique()), "iteration (0 = base model)")
    _legend_right(fig, axes[0])
    return _finish(fig, "Figure 3: results of different training trajectories across iterations", meta,
                   f"this run's points are shifted sideways by {DODGE} per method so equal scores stay visible")


def figure4_loops(loops: pd.DataFrame, meta: dict) -> plt.Figure:
    """Repeated action blocks by block length, one series per model.
    `loops`: columns model, length (1..5), count (mean per evaluation trajectory)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(data=loops, x="length", y="count", hue="model", ax=ax, palette="rocket")
    ax.set_xlabel("length of the repeated action sequence (actions)")
    ax.set_ylabel("repetitions per trajectory (mean)")
    ax.legend(fontsize=7, title=None, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(fig, "Figure 4: loops (immediately repeated action blocks) per evaluation trajectory", meta)


def figure5_revision_length(lengths: pd.DataFrame, meta: dict) -> plt.Figure:
    """Mean number of actions before the revision signal (t'), per iteration and env.
    `lengths`: one row per revision trajectory: iteration, env, t_prime."""
    summary = lengths.groupby(["env", "iteration"], as_index=False)["t_prime"].mean()
    summary["env"] = summary["env"].map(lambda env: ENV_TITLES.get(env, env))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=summary, x="env", y="t_prime", hue="iteration", ax=ax, palette="crest")
    ax.set_xlabel("")
    ax.set_ylabel("mean revision length t'\n(actions before the signal)")
    ax.legend(title="iteration", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(fig, "Figure 5: average revision length per iteration (Agent-R)", meta)


#: line style and marker per (source, mode): single-task (S) and multi-task (M) never share one
MODE_STYLES = {("ours", "M"): ("-", None), ("ours", "S"): (":", "^"),
               ("paper", "M"): ("--", "x"), ("paper", "S"): ("-.", "+")}


def figure6_training_methods(scores: pd.DataFrame, paper: dict, meta: dict) -> plt.Figure:
    """Agent-R vs Direct-Revision, single-task (S) vs multi-task (M), across iterations:
    this run (M solid, S dotted) and the paper's Table 6 (M dashed, S dash-dot)."""
    envs = sorted(scores["env"].unique())
    trained = scores[scores["method"].isin(["agent_r", "direct_revision"]) & (scores["iteration"] > 0)]
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.6), squeeze=False)
    paper_rows = pd.concat([_paper_table6(paper, "S"), _paper_table6(paper, "M")])
    groups = sorted(trained.groupby(["method", "mode"]).groups)
    offsets = _dodge([f"{method}/{mode}" for method, mode in groups])
    for ax, env in zip(axes[0], envs):
        for (method, mode), group in trained[trained["env"] == env].groupby(["method", "mode"]):
            group = group.sort_values("iteration")
            ls, marker = MODE_STYLES[("ours", mode)]
            ax.plot(group["iteration"] + offsets[f"{method}/{mode}"], group["score"], ls=ls,
                    marker=marker or METHOD_MARKERS[method], ms=6, color=METHOD_COLOURS[method], clip_on=False,
                    zorder=3, label=f"{METHOD_TITLES[method]}, {mode} (this run)")
            _error_bars(ax, group["iteration"] + offsets[f"{method}/{mode}"], group, METHOD_COLOURS[method])
        for (method, mode), group in paper_rows[paper_rows["env"] == env].groupby(["method", "mode"]):
            ls, marker = MODE_STYLES[("paper", mode)]
            ax.plot(group["iteration"], group["score"], ls=ls, alpha=0.5, marker=marker, ms=7, clip_on=False,
                    color=METHOD_COLOURS[method], label=f"{METHOD_TITLES[method]}, {mode} ({PAPER_LABEL})")
        ax.set_title(ENV_TITLES.get(env, env))
        _score_axis(ax, [1, 2, 3], "iteration")
    _legend_right(fig, axes[0])
    return _finish(fig, "Figure 6: training methods (S = single-task, M = multi-task)", meta,
                   f"this run's points are shifted sideways by {DODGE} per line so equal scores stay visible")


def _with_average(table: pd.DataFrame, envs: list[str]) -> pd.DataFrame:
    table = table.copy()
    table["Avg"] = table[envs].mean(axis=1)
    return table.rename(columns=ENV_TITLES).round(2)


def _model_intervals(rows: pd.DataFrame, averages: pd.DataFrame | None = None) -> dict[str, tuple]:
    """{column: (lo, hi)} of one model's rows (one per env; columns env, score_lo, score_hi),
    keyed by the tables' column titles; "Avg" from `averages` (the bootstrap stratified by
    env, results.collect_run) or, with one env, that env's interval."""
    if "score_lo" not in rows:
        return {}
    cells = {ENV_TITLES.get(r["env"], r["env"]): (r["score_lo"], r["score_hi"]) for _, r in rows.iterrows()}
    if averages is not None and not averages.empty and not rows.empty:
        first = rows.iloc[0]
        match = averages[(averages["variant"] == first["variant"]) & (averages["iteration"] == first["iteration"])]
        if len(match) == 1 and len(rows) == match["envs"].iloc[0]:
            cells["Avg"] = (match["score_lo"].iloc[0], match["score_hi"].iloc[0])
    elif len(cells) == 1:
        cells["Avg"] = next(iter(cells.values()))
    return cells


def with_intervals(table: pd.DataFrame, intervals: dict) -> pd.DataFrame:
    """This run's cells written "score [lo, hi]" (95% bootstrap interval over the test goals,
    x100); `intervals`: {row label: {column: (lo, hi)}}. Cells without an interval (the
    paper's, or a run without per-episode logs) stay plain numbers."""
    table = table.astype(object)
    for label, cells in intervals.items():
        for column, (lo, hi) in cells.items():
            value = table.at[label, column] if column in table.columns else None
            if value is not None and pd.notna(value) and pd.notna(lo) and pd.notna(hi):
                table.at[label, column] = f"{value:.2f} [{lo:.1f}, {hi:.1f}]"
    return table


def table1_trajectories(counts: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """Revision / good trajectories per iteration (Agent-R data), ours next to the paper's.
    `counts`: columns env, iteration, revision, good."""
    rows = []
    for (env, iteration), group in counts.groupby(["env", "iteration"]):
        theirs = paper["table1_trajectories"].get(env)
        rows.append({
            "env": ENV_TITLES.get(env, env), "iteration": iteration,
            "this run (revision / good)": f"{int(group['revision'].sum())} / {int(group['good'].sum())}",
            f"{PAPER_LABEL} (revision / good)": (
                f"{theirs['revision'][iteration - 1]} / {theirs['good'][iteration - 1]}" if theirs and iteration <= 3 else "-"),
        })
    return pd.DataFrame(rows).set_index(["env", "iteration"])


def table_sft_rows(sft: pd.DataFrame) -> pd.DataFrame:
    """What each fine-tuning trained on, per row kind: "kept of rows (truncated, dropped)".
    Truncated rows lost their oldest turns to fit max_seq_length (as at inference); dropped
    rows had no trained token left. `sft`: RunResults.sft."""
    if sft.empty:
        return pd.DataFrame(columns=["method", "iteration"]).set_index(["method", "iteration"])
    cells = sft.assign(cell=[f"{r.kept} of {r.rows} ({r.truncated} truncated, {r.dropped} dropped)"
                             for r in sft.itertuples()])
    table = cells.pivot_table(index=["variant", "iteration"], columns="kind", values="cell", aggfunc="first",
                              sort=False).fillna("-")
    order = ["revision", "direct", "good"]
    table = table[sorted(table.columns, key=lambda kind: (order.index(kind) if kind in order else len(order), kind))]
    table.columns = [f"{kind} rows" for kind in table.columns]
    return table.rename_axis(index=["training run", "iteration"], columns=None)


def table2_main(scores: pd.DataFrame, paper: dict, model_label: str,
                averages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our rows (base model and the last iteration of each multi-task method) under the
    paper's rows, average final score x 100; ours with their 95% intervals when `scores`
    has them (score_lo, score_hi; `averages` gives the Avg column's)."""
    envs = sorted(scores["env"].unique())
    multi = scores[scores["mode"] == "M"]
    last = multi["iteration"].max()
    ours, intervals = [], {}
    base = multi[multi["iteration"] == 0].pivot_table(index="method", columns="env", values="score")
    for _, row in base.iterrows():
        ours.append({"model": f"{model_label} (this run, base)", **row.to_dict()})
        intervals[ours[-1]["model"]] = _model_intervals(multi[multi["iteration"] == 0], averages)
    for method in [m for m in METHOD_TITLES if m in set(multi["method"])]:
        final = multi[(multi["method"] == method) & (multi["iteration"] == last)]
        ours.append({"model": f"+ {METHOD_TITLES[method]} iter {last} (this run)",
                     **final.set_index("env")["score"].to_dict()})
        intervals[ours[-1]["model"]] = _model_intervals(final, averages)
    paper_rows = [{"model": f"{name} ({PAPER_LABEL.split(', ')[0]})", **{e: v[e] for e in envs if e in v}}
                  for name, v in paper["table2_main"].items()]
    return with_intervals(_with_average(pd.DataFrame(paper_rows + ours).set_index("model"), envs), intervals)


def table3_revision(revision_scores: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """Revision ability: score after continuing from fixed erroneous prefixes.
    `revision_scores`: columns model, env, score (x100)."""
    envs = sorted(revision_scores["env"].unique())
    ours = revision_scores.pivot_table(index="model", columns="env", values="score", sort=False)
    intervals = {f"{name} (this run)": _model_intervals(revision_scores[revision_scores["model"] == name])
                 for name in ours.index}
    ours.index = [f"{name} (this run)" for name in ours.index]
    theirs = pd.DataFrame(paper["table3_revision_ability"]).T[envs]
    theirs.index = [f"{name} (paper)" for name in theirs.index]
    return with_intervals(_with_average(pd.concat([theirs, ours]).rename_axis("model"), envs), intervals)


def table6_single_multi(scores: pd.DataFrame, paper: dict, averages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Single-task (S) vs multi-task (M) per method and iteration, ours beside the paper's;
    ours with their 95% intervals when `scores` has them (the S rows' Avg mixes several
    single-task models, so it has none unless the run has one env)."""
    envs = sorted(scores["env"].unique())
    trained = scores[scores["method"].isin(["agent_r", "direct_revision"]) & (scores["iteration"] > 0)]
    ours = trained.pivot_table(index=["method", "iteration", "mode"], columns="env", values="score").reset_index()
    ours["source"] = "this run"
    intervals = {(method, iteration, mode, "this run"): _model_intervals(group, averages if mode == "M" else None)
                 for (method, iteration, mode), group in trained.groupby(["method", "iteration", "mode"])}
    theirs = pd.DataFrame(paper["table6_single_vs_multi"])[["method", "iteration", "mode", *envs]]
    theirs["source"] = PAPER_LABEL
    table = pd.concat([theirs, ours]).set_index(["method", "iteration", "mode", "source"]).sort_index()
    return with_intervals(_with_average(table, envs), intervals)
