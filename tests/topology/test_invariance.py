import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from mimoe_core.topology import descriptor_trajectories

coords = st.floats(-3.0, 3.0, allow_nan=False, width=64)


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 14), st.just(3)), elements=coords),
    st.integers(0, 2**32 - 1),
)
def test_rigid_motion_and_permutation_invariance(pos, seed):
    rng = np.random.default_rng(seed)
    radii = np.linspace(0.55, 5.05, 10)
    # At a distance equal to a radius (to round-off) a rotation may flip the edge: the
    # descriptors are invariant everywhere else, so such draws are not evidence either way.
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assume(np.abs(dist[..., None] - radii).min() > 1e-6)
    moved = pos @ Rotation.random(random_state=seed).as_matrix().T + rng.normal(size=3)
    perm = rng.permutation(len(pos))
    ref, rot, shuf = descriptor_trajectories(
        [pos, moved, pos[perm]], radii, normalize=False, dtype=np.float64
    )
    np.testing.assert_allclose(rot, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(shuf, ref, rtol=1e-12, atol=1e-12)
