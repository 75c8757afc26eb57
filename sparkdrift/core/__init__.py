"""The pure core: values, statistics and rules; numpy/scipy only, no Spark, no I/O."""
