"""All Delta I/O: inputs with time travel, and the monitor's own tables (profiles, histograms, metrics, actions)."""
