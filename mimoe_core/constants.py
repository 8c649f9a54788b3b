"""Limits and defaults shared by featurization, models and figures, importable without torch.

``MAX_Z``: atomic numbers the models embed are ``1 <= z < MAX_Z`` (their atom embeddings have
``MAX_Z`` rows); featurization rejects, with a reason, any structure holding an element at or
past it, so such a molecule is a reported skip and never an index error inside a model.

``DEFAULT_CUTOFFS``: the expert cutoffs in Å of the default model config (``cutoffs`` of
:data:`mimoe_core.models.registry.DEFAULT_CONFIG` and of ``mimoe_core/configs/*.yaml``),
also the cutoffs the figures mark when none are given.

``BACKBONES``, ``GATES``, ``VARIANTS``: the names a model config (and ``mimoe train``'s
options) may give, here so that the command line builds its parser, and answers ``--help``,
without importing torch; :mod:`mimoe_core.models.registry` maps each backbone to its class.
"""

from typing import Final

MAX_Z: Final[int] = 100

DEFAULT_CUTOFFS: Final[tuple[float, ...]] = (2.0, 2.5, 3.0, 3.5, 4.0)

BACKBONES: Final[tuple[str, ...]] = ("schnet", "painn", "visnet", "dimenet++", "et")

#: "size" (reads only the atom count) and "random" (a fixed hash) are ablations.
GATES: Final[tuple[str, ...]] = ("mlp", "transformer", "size", "random")

#: What a model is: a mixture with Top-k (``sparse``) or softmax (``dense``) routing, or one
#: expert with weight 1 (``one_expert``, a shallow expert; ``plain``, the full-depth backbone).
VARIANTS: Final[tuple[str, ...]] = ("sparse", "dense", "one_expert", "plain")
