"""Where results go after the store: MLflow tracking, the HTML report, the console."""
