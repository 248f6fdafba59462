"""Materializing a subset: the chosen uids of a pool become WebDataset shards.

``plan`` (``harness reshard``: which input shards hold the subset, the output layout, resume and
verification), ``tasks`` (one worker's job: copy the chosen members of an input shard), ``tarscan``
(a fast index of a tar's members), ``blur`` (face blurring while copying), ``byod`` (the BYOD
track: user sources gathered into a pool-shaped input first).
"""
