"""Copy into a new cache folder only the entries that featurizing some bundled datasets reads.

A lent GPU machine takes at most 64 MiB of upload, wheels included, while this machine's
cache holds every dataset any benchmark featurized here (Tox21 alone is about 16 MB).
``tools/gpu_checks.sh --prepare`` uses this to carry just what the GPU steps read:

    python tools/export_cache.py .gpu_cache freesolv bace

Each dataset is featurized with the default settings against this machine's cache
(``$MIMOE_CACHE_DIR``; a molecule not yet there is computed and stored first), and every
entry that featurization reads or writes is copied into ``OUT/featurize.sqlite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mimoe_core import cache as cache_module
from mimoe_core.data.bundled import BUNDLED
from mimoe_core.featurization import CACHE_FILE, featurize_dataset


def entries_read_by(names: list[str], limit: int | None = None) -> dict[str, tuple]:
    """Every cache entry that featurizing ``names`` reads or writes, by key.

    ``limit``: only each dataset's first rows (``load_dataset``'s), else all of them.

    Returns:
        ``key -> (arrays, meta)``, from this machine's cache.
    """
    seen: dict[str, tuple] = {}
    read, write = cache_module.ArrayCache.get_many, cache_module.ArrayCache.put_many

    # featurize opens its own cache, so its reads and writes are observed on the class.
    def get_many(self, keys):
        found = read(self, keys)
        seen.update(found)
        return found

    def put_many(self, items):
        items = list(items)
        seen.update((key, (arrays, meta)) for key, arrays, meta in items)
        write(self, items)

    cache_module.ArrayCache.get_many, cache_module.ArrayCache.put_many = get_many, put_many
    try:
        for name in names:
            featurize_dataset(name, limit, progress=False)
    finally:
        cache_module.ArrayCache.get_many, cache_module.ArrayCache.put_many = read, write
    return seen


def export(names: list[str], out: Path, limit: int | None = None) -> int:
    """Write the entries of :func:`entries_read_by` into ``out/featurize.sqlite`` (replaced).

    Returns:
        How many entries it holds.
    """
    entries = entries_read_by(names, limit)
    target = out / CACHE_FILE
    target.unlink(missing_ok=True)
    exported = cache_module.ArrayCache(target, "features")
    exported.put_many((key, arrays, meta) for key, (arrays, meta) in entries.items())
    exported.close()
    return len(entries)


def main(argv: list[str] | None = None) -> int:
    """Export the entries of the named datasets into ``OUT/featurize.sqlite``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the new cache folder (its file is replaced)")
    parser.add_argument("datasets", nargs="+", choices=sorted(BUNDLED))
    args = parser.parse_args(argv)
    count = export(args.datasets, args.out)
    target = args.out / CACHE_FILE
    size = target.stat().st_size / 2**20
    print(f"{count} entries of {', '.join(args.datasets)}: {target} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
