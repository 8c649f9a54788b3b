"""Throughput of the dense-filtration descriptors against a straightforward baseline.

Run single-threaded (the thread variables are set before numpy is imported):

    python benchmarks/bench_topology.py --dataset freesolv
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import gudhi  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mimoe_core.featurization import featurize_dataset  # noqa: E402
from mimoe_core.topology import (  # noqa: E402
    DESCRIPTOR_NAMES,
    descriptor_trajectories,
    pairwise_distances,
)

torch.set_num_threads(1)

TARGET_PER_CORE = 2000.0
TARGET_SPEEDUP = 50.0


def load_positions(dataset: str) -> tuple[list[np.ndarray], str]:
    """Conformers of a bundled dataset via the featurizer (cached after the first run)."""
    data = featurize_dataset(dataset, progress=False)
    return [d.pos.double().numpy() for d in data.data_list], "mimoe_core.featurization"


def baseline(pos: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """GUDHI Rips persistence + networkx indices on G(r), one radius at a time."""
    dist = pairwise_distances(pos)
    n = len(pos)
    tree = gudhi.RipsComplex(distance_matrix=dist, max_edge_length=radii[-1]).create_simplex_tree(
        max_dimension=2
    )
    pers = tree.persistence(persistence_dim_max=True)  # keep H1 when there are no triangles
    out = np.zeros((len(radii), len(DESCRIPTOR_NAMES)))
    iu, ju = np.triu_indices(n, 1)
    for t, r in enumerate(radii):
        for dim in (0, 1):
            out[t, dim] = sum(1 for d, (b, e) in pers if d == dim and b <= r < e)
        if n == 1:
            out[t, 0] = 1
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        keep = dist[iu, ju] <= r
        graph.add_edges_from(zip(iu[keep].tolist(), ju[keep].tolist(), strict=True))
        deg = dict(graph.degree())
        out[t, 2] = sum(1.0 / np.sqrt(deg[u] * deg[v]) for u, v in graph.edges())
        out[t, 3] = sum(nx.wiener_index(graph.subgraph(c)) for c in nx.connected_components(graph))
        out[t, 4] = nx.global_efficiency(graph)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="freesolv")
    parser.add_argument("--radii-step", type=float, default=0.1, help="grid step in Å")
    parser.add_argument("--radii-start", type=float, default=1.0)
    parser.add_argument("--radii-stop", type=float, default=5.0)
    parser.add_argument("--baseline-n", type=int, default=100, help="molecules for baseline")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours (best kept)")
    args = parser.parse_args()

    num = int(round((args.radii_stop - args.radii_start) / args.radii_step)) + 1
    radii = np.round(np.linspace(args.radii_start, args.radii_stop, num), 10)
    positions, source = load_positions(args.dataset)
    sizes = np.array([len(p) for p in positions])
    print(f"source: {source}")
    print(
        f"dataset: {args.dataset}  molecules: {len(positions)}  atoms: mean {sizes.mean():.1f}"
        f", min {sizes.min()}, max {sizes.max()}  radii: T={len(radii)} "
        f"({radii[0]}..{radii[-1]} step {args.radii_step})"
    )
    print(f"threads: torch {torch.get_num_threads()}, OMP/MKL/OPENBLAS 1")

    sub = positions[: args.baseline_n]
    start = time.perf_counter()
    base = np.stack([baseline(p, radii) for p in sub])
    base_rate = len(sub) / (time.perf_counter() - start)

    descriptor_trajectories(positions[:50], radii, normalize=False)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = descriptor_trajectories(positions, radii, normalize=False, dtype=np.float64)
        times.append(time.perf_counter() - start)
    rate = len(positions) / min(times)
    err = np.abs(ours[: len(sub)] - base).max()

    ratio = rate / base_rate
    print(f"baseline (GUDHI + networkx per radius, {len(sub)} molecules): {base_rate:.1f} mol/s")
    print(
        f"ours (descriptor_trajectories, {len(positions)} molecules, best of {args.repeats}): "
        f"{rate:.1f} mol/s  (runs: {', '.join(f'{t:.3f}' for t in times)} s)"
    )
    print(f"max |ours - baseline| on the baseline subset: {err:.2e}")
    print(f"speed-up: {ratio:.1f}x")
    ok_rate, ok_ratio = rate >= TARGET_PER_CORE, ratio >= TARGET_SPEEDUP
    print(f"target >= {TARGET_PER_CORE:.0f} mol/s per core: {'PASS' if ok_rate else 'FAIL'}")
    print(f"target >= {TARGET_SPEEDUP:.0f}x baseline: {'PASS' if ok_ratio else 'FAIL'}")


if __name__ == "__main__":
    main()
