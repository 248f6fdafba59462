"""DataComp's baseline filters (+ dedup and the tiny world's oracle), registered as entry points."""
