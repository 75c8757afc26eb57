"""Retrain a small classifier when sparkdrift says so; log and register it in MLflow.

Started by sparkdrift's ``mlflow_project`` action (``mlflow.projects.run``),
which sets MLFLOW_RUN_ID / MLFLOW_TRACKING_URI, so ``mlflow.start_run()`` below
continues the run that the action created and tagged. Also runs by hand:
``mlflow run examples/retrain --env-manager local``.

Data: ``--train-table`` is a CSV file, a parquet file or folder, or a Delta
folder (read with ``deltalake`` if installed, else local PySpark); without it a
small synthetic set is generated, seeded by the window so reruns agree.
"""
from __future__ import annotations

import argparse
import os
import sys
import zlib

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reason", default="manual")
    p.add_argument("--window-start", default="")
    p.add_argument("--window-end", default="")
    p.add_argument("--drifted-features", default="")
    p.add_argument("--drift-run-id", default="")
    p.add_argument("--train-table", default="", help="CSV / parquet / Delta path; empty: synthetic data")
    p.add_argument("--label", default="label")
    p.add_argument("--registered-model", default="sparkdrift-retrain-example")
    return p.parse_args(argv)


def _read_delta(path: str) -> pd.DataFrame:
    try:
        from deltalake import DeltaTable  # small and fast when installed
    except ImportError:
        from delta import configure_spark_with_delta_pip
        from pyspark.sql import SparkSession

        builder = (
            SparkSession.builder.master("local[2]").appName("sparkdrift-retrain")
            .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
            .config("spark.ui.enabled", "false")
        )
        spark = configure_spark_with_delta_pip(builder).getOrCreate()
        try:
            return spark.read.format("delta").load(path).toPandas()
        finally:
            spark.stop()
    return DeltaTable(path).to_pandas()


def load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.Series, str]:
    path = args.train_table
    if not path:
        seed = zlib.crc32(args.window_start.encode()) % (2**31)
        X, y = make_classification(
            n_samples=2000, n_features=6, n_informative=4, n_redundant=1, random_state=seed
        )
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), pd.Series(y, name="label"), "synthetic"
    if os.path.isdir(os.path.join(path, "_delta_log")):
        df = _read_delta(path)
    elif path.endswith(".csv"):
        df = pd.read_csv(path)
    else:
        df = pd.read_parquet(path)
    if args.label not in df.columns:
        sys.exit(f"train table {path}: no label column {args.label!r} (has: {', '.join(df.columns)})")
    df = df.dropna(subset=[args.label])
    y = df.pop(args.label)
    X = df.select_dtypes(include=[np.number, "bool"]).astype(float).fillna(0.0)
    if X.shape[1] == 0:
        sys.exit(f"train table {path}: no numeric feature columns")
    return X, y, path


def main(argv=None) -> None:
    args = parse_args(argv)
    X, y, source = load_data(args)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if y.nunique() > 1 else None
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
    model.fit(X_train, y_train)
    proba = model.predict_proba(X_test)
    pred = model.predict(X_test)

    with mlflow.start_run() as run:  # continues the run the project launcher created
        tags = {"sparkdrift.retrain_reason": args.reason[:500], "sparkdrift.drifted_features": args.drifted_features}
        if args.drift_run_id:  # lineage: the drift run that asked for this retrain
            tags["sparkdrift.drift_run_id"] = args.drift_run_id
        mlflow.set_tags(tags)
        mlflow.log_params({
            "model": "LogisticRegression", "C": 1.0, "data": source,
            "n_train": len(X_train), "n_test": len(X_test), "n_features": X.shape[1],
        })
        metrics = {"accuracy": accuracy_score(y_test, pred), "log_loss": log_loss(y_test, proba, labels=model.classes_)}
        if len(model.classes_) == 2:
            metrics["roc_auc"] = roc_auc_score(y_test, proba[:, 1])
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_test, pred),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # no slow requirement inference
            registered_model_name=args.registered_model or None,
        )
        version = getattr(info, "registered_model_version", None)
        print(
            f"retrained on {source}: accuracy {metrics['accuracy']:.3f}; run {run.info.run_id}"
            + (f"; registered {args.registered_model} v{version}" if version else "")
        )


if __name__ == "__main__":
    main()
