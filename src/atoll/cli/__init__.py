"""Atoll cli."""
