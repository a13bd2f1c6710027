"""Atoll web."""
