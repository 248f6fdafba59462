"""Shared infrastructure every stage builds on, and nothing stage-specific.

``errors`` (the one user-facing exception), ``paths`` (every per-user and per-install location:
conf/, the cache, the user's home), ``manifest`` (content hashes, stage manifests, atomic
directories, versions), ``engine`` (one pure function over many tasks: local processes or Ray),
``models`` (open_clip model configs and strict checkpoint loading), ``labels`` (short labels of
filter specs), ``config`` (the group dataclasses every command shares). Nothing here imports
from ``harness`` outside ``harness.core``.
"""
