"""``distributed.main_first`` under torchrun: each rank's work notes which ranks had finished
theirs when it started, and whether it was told to fill the cache. An entry point for tests:
``torchrun ... ddp_main_first.py FOLDER`` writes FOLDER/RANK, one line of ranks, and
FOLDER/RANK.fills, 1 or 0, when every rank is done.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mimoe_core.training import distributed


def main(folder: Path) -> int:
    context = distributed.init_from_env("cpu")
    done = folder / "done"
    done.mkdir(parents=True, exist_ok=True)

    def work(fills_cache: bool) -> tuple[list[int], bool]:
        before = sorted(int(p.name) for p in done.iterdir())
        (done / str(context.rank)).touch()
        return before, fills_cache

    before, fills_cache = distributed.main_first(work, context)
    (folder / str(context.rank)).write_text(" ".join(map(str, before)))
    (folder / f"{context.rank}.fills").write_text(str(int(fills_cache)))
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
