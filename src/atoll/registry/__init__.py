"""Atoll registry."""
