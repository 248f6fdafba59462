"""Tracks (filtering, byod), scales and their fixed training recipes, and the harness's model configs."""
