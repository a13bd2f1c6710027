"""Streaming anomaly detection."""
