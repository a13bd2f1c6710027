"""Atoll testing."""
