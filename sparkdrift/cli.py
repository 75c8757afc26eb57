"""Command line: `sparkdrift init|validate|baseline|detect|demo`. The only place that builds a SparkSession."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sparkdrift.errors import SparkDriftError

log = logging.getLogger("sparkdrift")


def _cmd_validate(args: argparse.Namespace) -> int:
    from sparkdrift.core.config import load_config

    cfg = load_config(args.config)
    print(f"{args.config}: valid monitor '{cfg.monitor}'")
    for key, value in cfg.display_items():
        print(f"  {key} = {value}")
    return 0


def _session(args: argparse.Namespace):
    from sparkdrift.spark.session import get_session

    return get_session(f"sparkdrift-{args.command}")


def _cmd_baseline(args: argparse.Namespace) -> int:
    from sparkdrift.baseline import run_baseline
    from sparkdrift.sinks.console import describe_baseline
    from sparkdrift.store import DeltaStore
    from sparkdrift.core.config import load_config

    cfg = load_config(args.config)
    spark = _session(args)
    if args.action == "show":
        print(describe_baseline(DeltaStore.of(spark, cfg).load_profile(args.baseline_id or cfg.baseline_id)))
        return 0
    profile, written = run_baseline(spark, cfg, force=args.force)
    print(describe_baseline(profile))
    if not written:
        print("(unchanged source and config: this baseline was already stored; nothing written)")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from sparkdrift.core.config import load_config, parse_timestamp
    from sparkdrift.errors import ConfigError
    from sparkdrift.detect import run_detect
    from sparkdrift.sinks.console import format_summary

    cfg = load_config(args.config)
    as_of = None
    if args.as_of:
        try:
            as_of = parse_timestamp(args.as_of)
        except ValueError as exc:
            raise ConfigError(f"--as-of: {exc}") from None
    outcome = run_detect(_session(args), cfg, as_of=as_of, report_dir=args.report_dir)
    print(format_summary(cfg, outcome))
    failed = [a for a in outcome.actions if a.status == "failed"]
    if outcome.errors:
        return 3  # a configured statistic could not be computed: the verdict is incomplete
    if outcome.mlflow_error and cfg.mlflow.required:
        return 4  # tables and actions are done; the MLflow run is missing or incomplete
    return 1 if failed and cfg.actions.fail_on_error else 0


def _cmd_init(args: argparse.Namespace) -> int:
    from sparkdrift import scaffold
    from sparkdrift.core.config import load_config

    monitor = args.monitor or scaffold.monitor_name(args.production)
    out = Path(args.out or f"conf/{monitor}.yaml")
    if out.exists() and not args.force:
        print(f"sparkdrift: error: {out} exists (use --force to overwrite, or --out)", file=sys.stderr)
        return 2
    from sparkdrift.store.tables import read_table

    spark = _session(args)
    prod = read_table(spark, args.production)  # read once: its schema, sample and time range
    baseline, production = scaffold.table_facts(read_table(spark, args.baseline)), scaffold.table_facts(prod)
    time = scaffold.time_facts(prod, scaffold.timestamp_column(production))
    proposal = scaffold.propose(monitor, baseline, production, time)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(scaffold.render(proposal, baseline, production))
    cfg = load_config(out)  # what was written is a valid monitor, or this says which key is not
    f = cfg.features
    print(f"wrote {out}: monitor {cfg.monitor}, {len(f.numeric)} numeric and {len(f.categorical)} categorical "
          f"features, windows of one {cfg.production.granularity} on {cfg.production.timestamp_column}"
          + (f", prediction {cfg.prediction.columns[0]} ({cfg.prediction.kind})" if cfg.prediction.columns else "")
          + (f", label {cfg.label.column}" if cfg.label.column else ""))
    print(f"review the guesses in its comments, then:\n  sparkdrift baseline --config {out}\n"
          f"  sparkdrift detect --config {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sparkdrift.demo import run_demo

    return run_demo(_session(args), Path(args.folder))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkdrift",
        description="Drift monitoring for ML models over Delta tables (Spark + MLflow).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="propose a monitor config from a baseline and a production table")
    p.add_argument("--baseline", required=True, help="reference table (training data): name or path")
    p.add_argument("--production", required=True, help="inference log table: name or path")
    p.add_argument("--monitor", help="monitor name (default: the production table's name)")
    p.add_argument("--out", help="YAML file to write (default: conf/<monitor>.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("validate", help="check a monitor config and print what was understood")
    p.add_argument("config", help="monitor YAML file")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("baseline", help="build (default) or show the baseline profile")
    p.add_argument("action", nargs="?", choices=["build", "show"], default="build")
    p.add_argument("--config", required=True, help="monitor YAML file")
    p.add_argument("--baseline-id", help="show: a specific baseline (default: latest)")
    p.add_argument("--force", action="store_true", help="build: rescan even if this baseline is stored")
    p.set_defaults(func=_cmd_baseline)

    p = sub.add_parser("detect", help="detect drift in new complete windows, log to Delta + MLflow, act")
    p.add_argument("--config", required=True, help="monitor YAML file")
    p.add_argument("--as-of", help="treat this ISO time as now (backfills, tests); default: now")
    p.add_argument("--report-dir", help="write the HTML/JSON report here too")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("demo", help="generate a churn-model case and run the whole loop locally")
    p.add_argument("--folder", default="sparkdrift-demo", help="where data, tables and MLflow go")
    p.set_defaults(func=_cmd_demo)
    return parser


def _not_py4j_retry(record: logging.LogRecord) -> bool:
    """Drop py4j's note that it resent a command on a fresh connection (logged to the root logger, with a
    traceback, although the command then succeeded); py4j's real failures are raised, not logged."""
    return not (record.name == "root" and record.levelno < logging.WARNING and "py4j" in record.pathname)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_py4j_retry)
    if not args.verbose:  # Spark Connect's client logs every analysis error with its JVM trace; we say it in one line
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except SparkDriftError as exc:
        print(f"sparkdrift: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparkdrift: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from sparkdrift.spark.session import executor_import_error

        hint = executor_import_error(exc)
        if hint is None:
            raise
        print(f"sparkdrift: error: {hint}", file=sys.stderr)
        return 2
