"""Fixtures shared by several test modules."""

from ray_head import ray_address  # noqa: F401  (a real Ray head on this machine, one per session)
