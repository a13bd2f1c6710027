"""Atoll sim."""
