"""The tiny world: a deterministic synthetic pool (CommonPool layout) with planted defects,
its hidden ground truth, a tiny eval suite (CLIP_benchmark layout) and a reference CLIP.

Modules: ``vocab`` (the world's words and colours, as data), ``render`` (vectorised scene
rendering), ``scenes`` (sampling scenes and captions), ``defects`` (planting defects),
``tario`` (deterministic WebDataset tars), ``evalsuite`` (the eval tasks), ``make`` (the command).
"""
