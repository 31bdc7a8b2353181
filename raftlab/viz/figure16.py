"""The paper's Figure 16 drawn from a `raftlab.sim.figure16.run_figure16` result."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..sim.figure16 import BOTTOM_LINES, TOP_LINES, Figure16Result


def plot_figure16(result: Figure16Result, *, width: float = 9.0, height: float = 7.0) -> Figure:
    """The paper's two-panel layout: cumulative distributions of the time without a leader, on a
    log-scale x axis; top: the 150-X lines, bottom: the other timeout ranges. Returns a matplotlib
    `Figure` (made without pyplot, so nothing is shown or kept by a global state)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    for axes, wanted, title in ((top, TOP_LINES, "more randomness in the election timeout"),
                                (bottom, BOTTOM_LINES, "shorter election timeouts")):
        for line in wanted:
            if line not in result.lines:
                continue
            r = result.lines[line]
            n = len(r.times_ms)
            finished = sorted(r.times_ms)[:n - r.censored]  # censored trials hold the limit, the largest time
            label = f"{r.label}" + (f" ({r.censored} of {n} > {result.limit:g} s)" if r.censored else "")
            if finished:  # a curve that stops below 100% where trials were still running at the limit
                axes.step(finished, [(k + 1) / n * 100 for k in range(len(finished))], where="post", label=label)
            else:  # no trial finished: an arrow at the limit, pointing beyond it
                axes.plot([result.limit * 1000], [3], marker=">", markersize=9, linestyle="none", label=label)
        axes.set_xscale("log")
        axes.set_ylim(0, 101)
        axes.set_ylabel("cumulative percent")
        axes.set_title(title, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="election timeout")
    bottom.set_xlabel("time without leader (ms)")
    low = min((min(r.times_ms) for r in result.lines.values()), default=10.0)
    high = max((max(r.times_ms) for r in result.lines.values()), default=1000)
    for axes in (top, bottom):
        axes.set_xlim(max(1.0, low * 0.8), high * 1.5)
    return figure
