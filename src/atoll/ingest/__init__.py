"""Atoll ingest."""
