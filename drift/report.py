"""The drift report: one self-contained HTML file, a section and a plot per feature, ranked by drift.

Plots are matplotlib figures rendered to inline SVG (text as paths): the file needs no network, no
JavaScript and no other file, so it opens from a CI artifact or an e-mail as it does locally.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from hindsight.drift.compare import DriftResult
from hindsight.drift.stats import FeatureDrift

BASELINE_COLOR = "#4c72b0"
SERVED_COLOR = "#dd8452"
#: Buckets drawn in a categorical plot (the largest on either side).
PLOT_CATEGORIES = 12

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
.meta { color: #555; margin: .2rem 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .7rem; text-align: right; }
th:first-child, td:first-child, .name { text-align: left; }
.verdict { font-weight: 600; padding: .5rem .8rem; border-radius: 4px; display: inline-block; margin: .6rem 0; }
.bad { background: #fde2e1; color: #8a1c17; } .warn { background: #fff3cd; color: #7a5a00; }
.ok { background: #e3f4e4; color: #1d5e20; }
.badge { font-size: .8rem; padding: .1rem .45rem; border-radius: 3px; }
section { border-top: 1px solid #eee; } .plot svg { max-width: 100%; height: auto; }
.up { color: #8a1c17; } .down { color: #1d4e8a; }
"""


def status(psi: float, threshold: float) -> tuple[str, str]:
    """(label, css class) of a PSI against the threshold.

    >>> status(0.5, 0.2), status(0.15, 0.2), status(0.01, 0.2)
    (('drifted', 'bad'), ('moderate', 'warn'), ('stable', 'ok'))
    """
    if psi > threshold:
        return "drifted", "bad"
    if psi > min(0.1, threshold / 2):
        return "moderate", "warn"
    return "stable", "ok"


def render(result: DriftResult, generated: dt.datetime | None = None) -> str:
    """The report as one HTML document."""
    generated = generated or dt.datetime.now(dt.timezone.utc)
    served = result.served
    e = html.escape
    breached = result.breached
    verdict_class = "bad" if breached else "ok"
    verdict = (f"{len(breached)} of {len(result.features)} features drifted (PSI above {result.threshold:g}): "
               + ", ".join(e(f.name) for f in breached)) if breached else (
        f"No feature drifted: every PSI is at or below {result.threshold:g}")
    period = f"{_when(served.first)} to {_when(served.last)}" if served.first else "none"
    versions = ", ".join(str(v) for v in served.registry_versions) or "unknown"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Drift of {e(result.service)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Drift of feature service <code>{e(result.service)}</code></h1>",
        f'<p class="meta">Baseline: <code>{e(result.baseline)}</code>, {result.baseline_rows:,} rows. '
        f"Served: {served.rows:,} sampled feature vectors, {period} (registry version {versions}).</p>",
        f'<p class="meta">Report generated {_when(generated)}. PSI buckets: baseline deciles for numeric features, '
        "categories for strings and booleans, plus missing values; KS: two-sample Kolmogorov-Smirnov.</p>",
        f'<div class="verdict {verdict_class}">{verdict}</div>',
        _summary_table(result),
    ]
    notes = []
    if result.not_in_baseline:
        notes.append("Served but not in the baseline (not compared): " + ", ".join(e(n) for n in result.not_in_baseline))
    if result.skipped:
        notes.append("Types not compared: " + ", ".join(f"{e(n)} ({e(t)})" for n, t in result.skipped))
    parts += [f'<p class="meta">{n}</p>' for n in notes]
    for rank, feature in enumerate(result.features, 1):
        parts.append(_section(rank, feature, result.threshold))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(result: DriftResult, path: str | Path) -> Path:
    """Render the report to `path` (its folder must exist); returns the path."""
    target = Path(path)
    target.write_text(render(result), encoding="utf-8")
    return target


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2e}"


def _direction(change: float) -> str:
    """CSS class of a share change, blank under the 0.1 points the table shows."""
    return "up" if change >= 0.0005 else "down" if change <= -0.0005 else ""


def _missing(feature: FeatureDrift) -> tuple[float, float]:
    bucket = feature.bucket("(missing)")
    return (bucket.baseline, bucket.served) if bucket else (0.0, 0.0)


def _summary_table(result: DriftResult) -> str:
    rows = []
    for rank, f in enumerate(result.features, 1):
        label, css = status(f.psi, result.threshold)
        base_missing, served_missing = _missing(f)
        rows.append(
            f'<tr><td>{rank}</td><td class="name"><a href="#f-{rank}">{html.escape(f.name)}</a></td><td class="name">{f.kind}</td>'
            f"<td><b>{_num(f.psi)}</b></td><td>{_num(f.ks_statistic)}</td><td>{_num(f.ks_pvalue)}</td>"
            f"<td>{_pct(base_missing)}</td><td>{_pct(served_missing)}</td>"
            f'<td><span class="badge {css}">{label}</span></td></tr>'
        )
    return ("<table><thead><tr><th>#</th><th class='name'>feature</th><th class='name'>kind</th><th>PSI</th><th>KS</th><th>KS p-value</th>"
            "<th>missing (baseline)</th><th>missing (served)</th><th>status</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _section(rank: int, f: FeatureDrift, threshold: float) -> str:
    label, css = status(f.psi, threshold)
    ks = (f", KS {_num(f.ks_statistic)} (p = {_num(f.ks_pvalue)})" if f.ks_statistic is not None else "")
    bucket_rows = "".join(
        f'<tr><td>{html.escape(b.label)}</td><td>{_pct(b.baseline)}</td><td>{_pct(b.served)}</td>'
        f'<td class="{_direction(b.change)}">{b.change * 100:+.1f} pts</td></tr>'
        for b in f.buckets
    )
    what = "bucket (baseline deciles)" if f.kind == "numeric" else "category"
    return (
        f'<section id="f-{rank}"><h2>{rank}. {html.escape(f.name)} <span class="badge {css}">{label}</span></h2>'
        f'<p class="meta">{f.kind}; PSI {_num(f.psi)}{ks}; {f.baseline_rows:,} baseline rows, '
        f"{f.served_rows:,} served rows</p>"
        f'<div class="plot">{plot_svg(f)}</div>'
        f"<table><thead><tr><th>{what}</th><th>baseline share</th><th>served share</th><th>change</th></tr></thead>"
        f"<tbody>{bucket_rows}</tbody></table></section>"
    )


def plot_svg(f: FeatureDrift) -> str:
    """The feature's plot as an inline <svg> element: overlaid histograms (numeric) or share bars."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    # A fixed hash salt and no date: the same data gives the same SVG.
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "hindsight-drift", "font.size": 9}):
        figure = Figure(figsize=(8.5, 2.8), layout="constrained")
        axes = figure.add_subplot()
        if f.kind == "numeric":
            _numeric_plot(axes, f)
        else:
            _categorical_plot(axes, f)
        axes.spines[["top", "right"]].set_visible(False)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _numeric_plot(axes: Any, f: FeatureDrift) -> None:
    base = f.baseline_values if f.baseline_values is not None else np.array([])
    now = f.served_values if f.served_values is not None else np.array([])
    both = np.concatenate([base, now])
    if not len(both):
        axes.text(0.5, 0.5, "no values on either side (all missing)", ha="center", va="center",
                  transform=axes.transAxes)
        return
    # Bins over the central 99% of both samples: a few outliers must not squash the plot into one bar.
    low, high = (float(np.quantile(both, q)) for q in (0.005, 0.995))
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, 41)
    for values, color, name in ((base, BASELINE_COLOR, "baseline"), (now, SERVED_COLOR, "served")):
        if len(values):
            axes.hist(values, bins=edges, density=True, histtype="stepfilled",
                      alpha=0.45, color=color, edgecolor=color, label=f"{name} ({len(values):,})")
    axes.set_ylabel("density")
    axes.set_xlabel(f"{f.name} (central 99% of values)")
    axes.legend(frameon=False)


def _categorical_plot(axes: Any, f: FeatureDrift) -> None:
    drawn = [b for b in f.buckets if b.baseline or b.served]
    buckets = sorted(drawn, key=lambda b: max(b.baseline, b.served), reverse=True)[:PLOT_CATEGORIES]
    labels = [b.label for b in buckets][::-1]
    y = np.arange(len(labels))
    axes.barh(y + 0.2, [b.baseline for b in buckets][::-1], height=0.4, color=BASELINE_COLOR, label="baseline")
    axes.barh(y - 0.2, [b.served for b in buckets][::-1], height=0.4, color=SERVED_COLOR, label="served")
    axes.set_yticks(y, labels)
    axes.set_xlabel("share of rows")
    axes.xaxis.set_major_formatter(lambda v, _: f"{v * 100:.0f}%")
    axes.legend(frameon=False, loc="lower right")
