"""spark-submit entry point of the detect job: exactly `sparkdrift detect ...`.

    spark-submit --packages io.delta:delta-spark_2.13:4.0.1 \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      jobs/detect_drift.py --config conf/example.yaml [--as-of 2026-01-15T02:00:00] [--report-dir DIR]

Exit code: 0, or 1 when an action failed and `actions.fail_on_error` is set,
2 for a configuration/table/baseline error (the message says what to fix).
"""
import sys

from sparkdrift.cli import main

if __name__ == "__main__":
    sys.exit(main(["detect", *sys.argv[1:]]))
