"""sparkdrift: drift monitoring for ML models over Delta tables."""
__version__ = "0.1.0"
