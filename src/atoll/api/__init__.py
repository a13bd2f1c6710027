"""Atoll api."""
