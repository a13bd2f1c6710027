"""Time-series storage: the SeriesStore port and its adapters."""
