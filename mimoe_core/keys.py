"""Names of the fields carried by one molecule's :class:`torch_geometric.data.Data`.

Use these constants instead of string literals, so a renamed field is one edit.

Per-atom fields (first dimension = number of atoms):
    ``Z``: atomic numbers ``[N]`` long. ``POS``: coordinates ``[N, 3]`` float32, in Å.
    ``ATOM_ATTR``: chemical atom features ``[N, F]`` float32, only when featurized with
    ``atom_attributes=True`` (:mod:`mimoe_core.atom_attributes`).
    ``CONF_POS``: a conformer ensemble's coordinates ``[N, M, 3]`` float32, lowest energy
    first (``[:, 0]`` is ``POS``), only when featurized with ``keep_conformers = M > 1``.

Per-molecule fields carry a leading dimension of 1 so that ``Batch`` stacks them:
    ``Y``: targets ``[1, num_targets]`` float32 (NaN where a label is missing).
    ``Y_MASK``: ``[1, num_targets]`` bool, True where the label exists.
    ``TOPO``: descriptor trajectory ``[1, T, D]`` float32 (filled by the topology step).
    ``CONF_TOPO``: the trajectory of each conformer of an ensemble ``[1, M, T, D]``.

Plain Python attributes: ``SMILES`` (canonical SMILES of the embedded structure), ``ROW``
(0-based data row of the source file), ``MOL_ID`` (the source's identifier, or the row).
"""

Z = "z"
POS = "pos"
ATOM_ATTR = "atom_attr"
CONF_POS = "conf_pos"
CONF_TOPO = "conf_topo"
Y = "y"
Y_MASK = "y_mask"
TOPO = "topo"
SMILES = "smiles"
ROW = "row"
MOL_ID = "mol_id"
