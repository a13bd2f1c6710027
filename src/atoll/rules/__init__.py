"""Atoll rules."""
