"""Success / precision plots in the OTB toolkit's style and Markdown or console tables."""
import os
from pathlib import Path

from . import metrics
from .datasets import DATASETS
from .errors import EvalError
from .paired import paired_difference
from .scoring import attribute_subsets
from .textio import write_atomic

# kind -> (curve key, summary key, x values, x label, y label, legend title)
_KINDS = {
    "success": ("success", "auc", metrics.SUCCESS_THRESHOLDS, "Overlap threshold",
                "Success rate", "Success plots of OPE"),
    "precision": ("precision", "precision", metrics.PRECISION_THRESHOLDS,
                  "Location error threshold (px)", "Precision", "Precision plots of OPE"),
    "norm_precision": ("norm_precision", "norm_precision", metrics.NORM_PRECISION_THRESHOLDS,
                       "Normalized location error threshold", "Normalized precision",
                       "Normalized precision plots of OPE"),
}
_STYLES = ("-", "--", "-.", ":")


def _draw(ax, scores, kind, title=None, names=None):
    curve_key, summary_key, xs, xlabel, ylabel, default_title = _KINDS[kind]
    rows = []
    for s in scores:
        curves = s.mean_curves(names)
        rows.append((metrics.summarize(curves)[summary_key], s.tracker, curves[curve_key]))
    rows.sort(key=lambda r: -r[0])
    # Colours follow the overall AUC ranking so a tracker looks the same in every plot.
    style = {s.tracker: i for i, s in enumerate(_sorted(scores))}
    for i, (value, name, ys) in enumerate(rows):
        k = style[name]
        ax.plot(xs, ys, color=f"C{k % 10}", linestyle=_STYLES[(k // 10) % len(_STYLES)],
                linewidth=2 if i == 0 else 1.5, label=f"[{value:.3f}] {name}")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or default_title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)


def _figure(ncols):
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * ncols, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_format(path):
    """The image format for a plot file: its suffix's, PNG for a bare name; EvalError for one
    matplotlib cannot write (checked before scoring, not after)."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix[1:].lower() or "png"
    known = FigureCanvasBase.get_supported_filetypes()
    if fmt not in known:
        raise EvalError(f"cannot write a plot to {path}: unknown image format {fmt!r} "
                        f"(use .png, .pdf or .svg)")
    return fmt


def _save(fig, path):
    """Write under a temporary name, then rename: a full disk leaves no truncated plot behind.

    The format is given explicitly: for a bare name matplotlib would append ".png" and write a
    file other than the one named. A path that is not a regular file (/dev/stdout) is written
    straight through."""
    path = Path(path)
    fmt = plot_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    if path.exists() and not path.is_file():
        fig.savefig(path, format=fmt)
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=fmt)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def plot_curves(scores, kind, path, title=None, names=None):
    """One PNG with a curve per tracker, legend '[score] name' sorted best first like the OTB
    toolkit. kind: success, precision or norm_precision; names: a subset of sequences."""
    fig = _figure(1)
    _draw(fig.add_subplot(1, 1, 1), scores, kind, title, names)
    return _save(fig, path)


def plot_summary(scores, path, kinds=("success", "precision"), label=""):
    """Several plots side by side in one PNG (what `track-eval score --plot` writes)."""
    fig = _figure(len(kinds))
    for i, kind in enumerate(kinds):
        title = _KINDS[kind][5] + (f" on {label}" if label else "")
        _draw(fig.add_subplot(1, len(kinds), i + 1), scores, kind, title)
    return _save(fig, path)


def _sorted(scores):
    return sorted(scores, key=lambda s: -s.summary()["auc"])


def _columns(scores):
    cols = [("AUC", "auc"), ("P@20", "precision"), ("NP@0.20", "norm_precision")]
    if any(s.got10k for s in scores):
        cols += [("AO", "ao"), ("SR@0.5", "sr50"), ("SR@0.75", "sr75")]
    return cols


def markdown_table(scores):
    cols = _columns(scores)
    lines = ["| tracker | " + " | ".join(c for c, _ in cols) + " | sequences |",
             "| --- | " + " | ".join("---:" for _ in cols) + " | ---: |"]
    for s in _sorted(scores):
        values = s.as_json()
        cells = [f"{values[k]:.4f}" if k in values else "" for _, k in cols]
        lines.append(f"| {s.tracker} | " + " | ".join(cells) + f" | {s.n_seqs} |")
    return "\n".join(lines) + "\n"


def console_table(scores):
    cols = _columns(scores)
    width = max(7, *(len(s.tracker) for s in scores))
    head = f"{'tracker':<{width}}  " + "  ".join(f"{c:>7}" for c, _ in cols) + "  seqs"
    lines = [head, "-" * len(head)]
    for s in _sorted(scores):
        values = s.as_json()
        lines.append(f"{s.tracker:<{width}}  "
                     + "  ".join(f"{values.get(k, float('nan')):>7.4f}" for _, k in cols)
                     + f"  {s.n_seqs:>4}")
    return "\n".join(lines) + "\n"


def attribute_table(scores, sequences, key="auc"):
    """Markdown table of one measure per attribute (rows) and tracker (columns), or '' when the
    dataset has no per-sequence attributes."""
    subsets = attribute_subsets(sequences)
    if not subsets:
        return ""
    ordered = _sorted(scores)
    lines = ["| attribute (sequences) | " + " | ".join(s.tracker for s in ordered) + " |",
             "| --- | " + " | ".join("---:" for _ in ordered) + " |"]
    for attr, names in subsets.items():
        cells = []
        for s in ordered:
            scored = names.intersection(s.names)
            cells.append(f"{s.summary(scored)[key]:.3f}" if scored else "–")
        lines.append(f"| {attr} ({len(names)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sequence_table(scores, key="auc"):
    """Markdown table of one measure per sequence (rows) and tracker (columns): where a tracker
    fails, which the averages hide. Sequences a tracker has no results for show '–'."""
    ordered = _sorted(scores)
    names = sorted(set().union(*(s.names for s in ordered)))
    lines = ["| sequence | " + " | ".join(s.tracker for s in ordered) + " |",
             "| --- | " + " | ".join("---:" for _ in ordered) + " |"]
    for name in names:
        cells = [f"{s.summary({name})[key]:.3f}" if name in s.names else "–" for s in ordered]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(scores, baseline, key="auc"):
    """Markdown table: each tracker minus ``baseline`` per sequence, mean with a 95% paired
    bootstrap interval over sequences, and wins / ties / losses."""
    by_name = {s.tracker: s for s in scores}
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not among the scored trackers: {', '.join(sorted(by_name))}")

    def per_seq(s):
        return {n: s.summary({n})[key] for n in s.names}

    base = per_seq(by_name[baseline])
    label = {"auc": "AUC", "precision": "P@20", "norm_precision": "NP@0.20"}.get(key, key)
    lines = [f"| tracker | mean {label} − {baseline} | 95% interval | wins / ties / losses | sequences |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for s in _sorted(scores):
        if s.tracker == baseline:
            continue
        d = paired_difference(per_seq(s), base, s.tracker, baseline)
        lines.append(f"| {s.tracker} | {d.mean:+.3f} | [{d.lo:+.3f}, {d.hi:+.3f}] | "
                     f"{d.wins} / {d.ties} / {d.losses} | {d.n} |")
    return "\n".join(lines) + "\n"


def write_report(scores, sequences, out_dir, dataset, baseline=None):
    """Plots and tables for `scores` into out_dir; returns the written paths. With ``baseline``
    (a tracker name) the report also compares every tracker with it, sequence by sequence."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = dataset.upper() if dataset != "folder" else "sequences"
    written = [plot_curves(scores, "success", out_dir / "success.png",
                           f"Success plots of OPE on {label}"),
               plot_curves(scores, "precision", out_dir / "precision.png",
                           f"Precision plots of OPE on {label}")]
    if dataset in DATASETS and DATASETS[dataset].norm_precision:
        written.append(plot_curves(scores, "norm_precision", out_dir / "norm_precision.png",
                                   f"Normalized precision plots of OPE on {label}"))
    text = [f"# {label}: {len(sequences)} sequences\n", markdown_table(scores)]
    missing = {s.tracker: s.missing for s in scores if s.missing}
    for tracker, names in missing.items():
        text.append(f"\n{tracker}: no results for {len(names)} sequences ({', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''}); scored over the rest.\n")
    by_attribute = attribute_table(scores, sequences)
    if by_attribute:
        text += ["\n## Success AUC per attribute\n\n", by_attribute,
                 "\n## P@20 per attribute\n\n", attribute_table(scores, sequences, "precision")]
    text += ["\n## Success AUC per sequence\n\n", sequence_table(scores)]
    if baseline:
        text += [f"\n## Paired difference in success AUC against {baseline}\n\n",
                 "Per-sequence differences resampled with replacement (10,000 resamples); ties: "
                 "|difference| ≤ 0.005.\n\n", paired_table(scores, baseline)]
    table = out_dir / "results.md"
    write_atomic(table, "".join(text))  # last, and whole or not at all: it marks a finished report
    written.append(table)
    return written
