"""Memory that ``mimoe featurize --shards`` holds for the whole run, per molecule.

A sharded run keeps one shard's molecules in memory at a time, but two things grow with the
dataset: the input table (SMILES, ids, rows, labels), read whole, and the index of the
structures seen so far, which finds duplicates across shards. The index holds a 64-bit
digest and the first entry of each structure; before, it held the structure's strings
(the embedded SMILES, the canonical SMILES and the fragment count). Both forms are built
here from the same molecules, their retained Python memory measured with ``tracemalloc``
(RDKit's own allocations are freed before and not counted), beside the table's:

    python benchmarks/bench_shard_index.py --out benchmarks/results/shard_index_cpu.md
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from _parallel_runs import report_header, write_report

from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import load_dataset
from mimoe_core.shards import writer

SHARD_SIZE = 4096


def _retained(build: Callable[[], object]) -> tuple[int, object]:
    """Bytes that ``build()``'s result keeps alive (its temporaries are freed), and it."""
    tracemalloc.start()
    try:
        result = build()
        return tracemalloc.get_traced_memory()[0], result
    finally:
        tracemalloc.stop()


def _strings_index(table, settings) -> dict[str, tuple[int, str, int]]:
    """The index as it was: embedded structure -> (first entry, canonical SMILES, fragments)."""
    index: dict[str, tuple[int, str, int]] = {}
    for i in range(len(table.inputs)):
        found = writer._structure(table, settings, i)
        if found is not None:
            embedded, canonical, n_fragments = found
            index.setdefault(embedded, (i, canonical, n_fragments))
    return index


def _digest_index(table, settings) -> dict:
    """The index as ``write_shards`` builds it now, chunk by chunk."""
    index: dict = {}
    for start in range(0, len(table.inputs), SHARD_SIZE):
        stop = min(start + SHARD_SIZE, len(table.inputs))
        writer._cross_chunk_duplicates(table, settings, start, stop, index)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="tox21,lipo", help="bundled sets, comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="first N molecules of each")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shard_index_cpu.md"))
    args = parser.parse_args(argv)
    settings = ConformerSettings()
    lines = [
        *report_header(
            "`mimoe featurize --shards`: the memory that grows with the dataset", __file__, argv
        ),
        "- bytes of Python memory retained per molecule (tracemalloc), built from the same "
        f"molecules in one run; the index is built in chunks of {SHARD_SIZE} as the writer does",
        "",
        "| dataset | molecules | table | index before (strings) | index now (digests) "
        "| now / before |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.datasets.split(","):
        table_bytes, table = _retained(lambda name=name: load_dataset(name, limit=args.limit))
        for build in (_strings_index, _digest_index):  # RDKit's and our lazy imports first
            build(table.head(20), settings)
        before, old = _retained(lambda table=table: _strings_index(table, settings))
        now, new = _retained(lambda table=table: _digest_index(table, settings))
        if len(new) != len(old):  # both must hold one entry per distinct structure
            raise RuntimeError(f"{name}: {len(new)} digests for {len(old)} structures")
        n = len(table.inputs)
        lines.append(
            f"| {name} | {n} | {table_bytes / n:.0f} | {before / n:.0f} | {now / n:.0f} "
            f"| {now / before:.3f} |"
        )
    write_report(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
