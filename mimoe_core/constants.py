"""Limits shared by featurization and the models, importable without torch.

``MAX_Z``: atomic numbers the models embed are ``1 <= z < MAX_Z`` (their atom embeddings have
``MAX_Z`` rows); featurization rejects, with a reason, any structure holding an element at or
past it, so such a molecule is a reported skip and never an index error inside a model.
"""

from typing import Final

MAX_Z: Final[int] = 100
