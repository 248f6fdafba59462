"""Zero-shot evaluation: the task registry (``tasks/*.yaml``, parsed into typed dataclasses),
data loading in the CLIP_benchmark layout, classification, retrieval and WinoGAViL, DataComp's
metrics and aggregates, and ``harness eval`` / ``eval list`` / ``eval download``."""
