"""analytics-cli: collect platform usage metrics into PostgreSQL, one cycle per run."""

__version__ = "0.1.0"
