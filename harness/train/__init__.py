"""Training: a scale's fixed recipe turned into an ``open_clip_train`` run.

``launch`` (``harness train``: recipe → open_clip_train's arguments, local and torchrun
launchers, the ``train.json`` record), ``slurm`` (the submitit launcher), ``entry`` (the child
process that registers the harness's model configs and calls ``open_clip_train.main``).
"""
