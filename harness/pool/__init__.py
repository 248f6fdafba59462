"""A CommonPool: its on-disk format and the ways to get one.

``format`` (metadata parquet + row-aligned npz, WebDataset shards, stats files), ``uids`` (the
128-bit uid as two uint64 and DataComp's ``u8,u8`` subset files), ``download`` (``harness pool
download``: img2dataset into the layout), ``featurize`` (``harness pool featurize``: embeddings
and CLIP scores), ``world/`` (``harness pool make``: the synthetic tiny world).
"""
