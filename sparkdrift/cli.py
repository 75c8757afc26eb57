"""Command line: `sparkdrift validate|baseline|detect|demo`. The only place that builds a SparkSession."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sparkdrift.errors import SparkDriftError

log = logging.getLogger("sparkdrift")


def _cmd_validate(args: argparse.Namespace) -> int:
    from sparkdrift.config import flatten, load_config

    cfg = load_config(args.config)
    print(f"{args.config}: valid monitor '{cfg.monitor}'")
    for key, value in flatten(cfg.to_dict()).items():
        print(f"  {key} = {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkdrift",
        description="Drift monitoring for ML models over Delta tables (Spark + MLflow).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a monitor config and print what was understood")
    p.add_argument("config", help="monitor YAML file")
    p.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except SparkDriftError as exc:
        print(f"sparkdrift: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparkdrift: interrupted", file=sys.stderr)
        return 130
