"""knowgen: a Gymnasium environment and benchmark suite for search-augmented image generation.

Importing knowgen is light: it registers the ``knowgen/SearchGen-v0`` environment
with Gymnasium and loads nothing heavy (no torch).
"""

from __future__ import annotations

__version__ = "0.1.0"

from knowgen.envs import register_envs as _register_envs

_register_envs()

__all__ = ["__version__"]
