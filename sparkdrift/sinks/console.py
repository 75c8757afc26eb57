"""What the CLI prints: the summary a detect run ends with, and `sparkdrift baseline show`."""
from __future__ import annotations

import math

from sparkdrift.core.config import MonitorConfig
from sparkdrift.core.planning import shown_status
from sparkdrift.core.profile import BaselineProfile
from sparkdrift.core.slices import SliceFinding


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


_HEADLINE = ("psi", "ks", "js", "chi2", "tv", "wasserstein")


def _headline(stats: dict[str, float], most: int = 3) -> list[tuple[str, float]]:
    """The few best-known breached statistics of a column (all are in the table and MLflow)."""
    ranked = sorted(stats.items(), key=lambda kv: (_HEADLINE.index(kv[0]) if kv[0] in _HEADLINE else 99, kv[0]))
    return ranked[:most]


def format_summary(cfg: MonitorConfig, outcome) -> str:
    """A readable table of the run (the same facts the MLflow run holds)."""
    lines = [f"sparkdrift detect: monitor {cfg.monitor}"]
    if not outcome.windows:
        lines.append(f"  {outcome.message}")
        return "\n".join(lines)
    first, last = outcome.windows[0].window_start, outcome.windows[-1].window_end
    lines.append(
        f"  windows: {len(outcome.windows)} ({first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC), "
        f"baseline {outcome.baseline_id}, overall severity: {outcome.severity.upper()}"
    )
    if outcome.noise:
        lines.append(f"  noise floors {outcome.noise}")
    if outcome.null_timestamps:
        lines.append(f"  rows with a null timestamp (in no window): {outcome.null_timestamps}")
    lines.append("")
    floors = {(r.window_start, r.feature, r.statistic): r.noise_floor
              for r in outcome.results if r.reference == "baseline" and r.noise_floor is not None}
    lines.append(f"  score = {cfg.policy.score} over the columns, counting only values above their noise floor")
    lines.append(f"  {'window':<17} {'severity':<9} {'score':>6} {'drifted':>7}  features (statistic=value [noise floor])")
    for d in outcome.decisions:
        feats = "; ".join(
            f"{name} " + ", ".join(
                f"{k}={_fmt(v)}" + (f" [{_fmt(floors[(d.window_start, name, k)])}]"
                                    if (d.window_start, name, k) in floors else "")
                for k, v in _headline(stats)
            )
            for name, stats in sorted(d.drifted.items())
        )
        lines.append(
            f"  {d.window_start:%Y-%m-%d %H:%M} {d.severity:<9} {_fmt(d.score):>6} {d.n_drifted:>7}  {feats or '-'}"
        )
    where = getattr(outcome, "where", None)
    if where:
        lines.append("")
        lines.append("  where is the drift (slice values ranked by excess over their noise floor, share of rows):")
        lines += [f"    {line}" for line in where_lines(where)]
    errors = outcome.errors
    if errors:
        lines.append("")
        lines.append(f"  ERRORS: {len(errors)} statistics could not be computed (exit code 3); first: {errors[0]}")
    fired = [d for d in outcome.decisions if d.rules]
    if fired:
        lines.append("")
        lines.append(f"  rules that fired in the latest breached window: {'; '.join(fired[-1].rules)}")
    lines.append("")
    if outcome.actions:
        lines.append("  actions:")
        for a in outcome.actions:
            ran = f" -> run {a.retrain_run_id}" if getattr(a, "retrain_run_id", None) else ""
            status = shown_status(a, bool(cfg.actions.retrain and cfg.actions.retrain.synchronous))
            if status == "launched":
                status += " (runs on its own; see its MLflow run)"
            lines.append(f"    {a.action} ({a.kind}) for {a.window_start:%Y-%m-%d %H:%M}: {status}{ran}")
    else:
        lines.append("  actions: none")
    c = outcome.cost
    if c:
        known = [c.get(k) for k in ("scan_rows", "scan_files", "scan_bytes", "task_time_s", "wall_time_s")]
        rows, files, size, task, wall = [None if v is None else float(v) for v in known]  # None: unknown here
        scanned = (f"{int(rows):,} rows in {int(files)} files ({size / 1e6:.1f} MB) scanned"
                   if None not in (rows, files, size) else "scan size unknown")
        lines.append(
            f"  cost: {scanned}, task time {'unknown' if task is None else f'{task:.1f}s'}, "
            f"wall {'unknown' if wall is None else f'{wall:.1f}s'}"
        )
    if outcome.mlflow_error:
        lines.append(f"  MLflow: NOT logged ({outcome.mlflow_error}); results, histograms and actions are in the tables, "
                     "and the next run logs these windows again")
    if outcome.run_id:
        lines.append(f"  MLflow run: {outcome.run_id}  {outcome.run_url or ''}")
    if outcome.report_dir:
        lines.append(f"  report: {outcome.report_dir / 'drift_report.html'}")
    lines.append(f"  tables: {cfg.output_table('metrics')}, {cfg.output_table('histograms')}, {cfg.output_table('actions')}")
    return "\n".join(lines)


def where_lines(where: dict[str, list[SliceFinding]], most: int = 3) -> list[str]:
    """``age: country=DE psi=0.412 (+0.37, 12% of rows), ...``: the slices carrying each drifted column's drift."""
    out = []
    for feature, found in where.items():
        shown = ", ".join(
            f"{f.label} {f.statistic}={_fmt(f.value)} ({f.contribution:+.3f}, "
            f"{'?' if math.isnan(f.share) else f'{f.share:.0%}'} of rows{'' if f.counted else ', not counted'})"
            for f in found[:most]
        )
        out.append(f"{feature}: {shown}")
    return out


def _fmt6(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"


def describe_baseline(profile: BaselineProfile, top: int = 5) -> str:
    """A readable summary for `sparkdrift baseline show`."""
    version = "?" if profile.source_version is None else profile.source_version
    lines = [
        f"baseline {profile.baseline_id}  (monitor {profile.monitor})",
        f"  source:  {profile.source_table} @ version {version}",
        f"  created: {profile.created_at}",
        f"  rows:    {profile.row_count:,}",
        f"  config:  {profile.config_hash}",
        f"  columns: {len(profile.features)}",
    ]
    width = max((len(n) for n in profile.features), default=0)
    for name, fp in profile.features.items():
        h = fp.baseline
        role = "" if fp.role == "feature" else f" [{fp.role}]"
        nulls = f"nulls {h.nulls:,}" + (f", NaN {h.nans:,}" if h.nans else "")
        if fp.kind == "numeric":
            if fp.all_null:
                detail = "no finite values"
            else:
                detail = (
                    f"{len(fp.edges)} fine / {len(fp.coarse)} coarse bins, min {_fmt6(h.min)}, max {_fmt6(h.max)}, "
                    "mean {}, std {}".format(*map(_fmt6, fp.mean_std()))
                )
        elif not fp.categories:
            detail = "no values"
        else:
            total = int(h.counts.sum())
            shown = ", ".join(
                f"{c!r} {n / total:.1%}" if total else repr(c) for c, n in zip(fp.categories[:top], h.counts[:top])
            )
            more = f", ... (+{len(fp.categories) - top})" if len(fp.categories) > top else ""
            other = f"other {h.counts[-1] / total:.1%}" if total else "other 0"
            if fp.tracked is not None:
                tracked = f"{len(fp.tracked)} tracked"
            elif fp.members is not None:
                m = fp.members
                tracked = (f"{m.values:,} sketched ({m.bits:,}-bit Bloom filter, "
                           f"{m.false_positive_rate():.2%} of unseen counted as other)")
            else:
                tracked = "untracked (too many)"
            detail = f"top {len(fp.categories)}: {shown}{more}; {other}, {tracked}"
        lines.append(f"  {name:<{width}}  {fp.kind:<11} {fp.dtype:<8}{role}  {nulls}; {detail}")
    performance = profile.performance
    if performance is not None:
        lines.append(
            f"  performance: label x prediction counts over {int(performance.counts.sum()):,} labelled rows"
            f" ({performance.nulls:,} without label or prediction)"
        )
    return "\n".join(lines)
