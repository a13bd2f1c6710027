"""Atoll solutions."""
