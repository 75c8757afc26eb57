"""spark-submit entry point of the baseline job: exactly `sparkdrift baseline ...`.

    spark-submit --packages io.delta:delta-spark_2.13:4.0.1 \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      jobs/build_baseline.py --config conf/example.yaml

Arguments after the script are the CLI's (`build` or `show`, `--config`,
`--baseline-id`); see docs/deployment.md.
"""
import sys

from sparkdrift.cli import main

if __name__ == "__main__":
    sys.exit(main(["baseline", *sys.argv[1:]]))
