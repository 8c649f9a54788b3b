"""Download code for MoleculeNet sets that are not bundled (HIV, BBBP, SIDER, MUV).

Files are fetched once into ``$MIMOE_CACHE_DIR/datasets`` (default ``~/.cache/mimoe``) and read
with :func:`~mimoe_core.data.readers.read_csv`. The base address is MoleculeNet's public bucket;
set ``$MIMOE_DATA_URL`` (or pass ``base_url``) to use a mirror or a local folder
(``file:///path/``), e.g. on a machine without internet access.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mimoe_core.cache import default_cache_dir
from mimoe_core.data.readers import read_csv
from mimoe_core.data.table import MoleculeTable, Task

DEFAULT_BASE_URL = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"


class _Incomplete(Exception):
    """The server closed the connection before sending Content-Length bytes."""


@dataclass(frozen=True)
class RemoteDataset:
    """A MoleculeNet file and how to read it.

    Attributes:
        file: File name under the base address.
        task: ``"regression"`` or ``"classification"``.
        smiles_col: SMILES column.
        targets: Label columns; empty means every column except SMILES, id and ``exclude``.
        id_col: Identifier column, if any.
        exclude: Columns that are neither SMILES, id nor labels.
    """

    file: str
    task: Task
    smiles_col: str = "smiles"
    targets: tuple[str, ...] = ()
    id_col: str | None = None
    exclude: tuple[str, ...] = ()


REMOTE: dict[str, RemoteDataset] = {
    "hiv": RemoteDataset(
        "HIV.csv", "classification", targets=("HIV_active",), exclude=("activity",)
    ),
    "bbbp": RemoteDataset(
        "BBBP.csv", "classification", targets=("p_np",), id_col="name", exclude=("num",)
    ),
    "sider": RemoteDataset("sider.csv.gz", "classification"),
    "muv": RemoteDataset("muv.csv.gz", "classification", id_col="mol_id"),
}


def fetch(name: str, base_url: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Download a :data:`REMOTE` dataset file once and return its local path.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
        ConnectionError: The download failed (no connection, timeout, HTTP error, a body
            cut short, a malformed address); the one-line message names the file, the address
            and how to use a local copy. No partial file is left behind.
    """
    if name not in REMOTE:
        raise ValueError(f"unknown remote dataset {name!r}; known: {', '.join(REMOTE)}")
    spec = REMOTE[name]
    folder = Path(cache_dir or default_cache_dir()) / "datasets"
    target = folder / spec.file
    if target.exists() and target.stat().st_size > 0:
        return target
    base = base_url or os.environ.get("MIMOE_DATA_URL") or DEFAULT_BASE_URL
    url = base.rstrip("/") + "/" + spec.file
    folder.mkdir(parents=True, exist_ok=True)
    # A unique partial file per process: a failed or concurrent download never leaves a
    # half-written file under the final name (the rename below is atomic).
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and out.tell() != int(expected):
                raise _Incomplete(f"incomplete: {out.tell()} of {expected} bytes")
    except (OSError, ValueError, http.client.HTTPException, _Incomplete) as err:
        partial.unlink(missing_ok=True)
        # URLError (HTTPError too), timeouts and resets are OSErrors; a malformed address is
        # a ValueError; a body cut short is an HTTPException (IncompleteRead) or _Incomplete.
        plain = isinstance(err, urllib.error.URLError) and not isinstance(
            err, urllib.error.HTTPError
        )  # "<urlopen error ...>" wraps the reason; "HTTP Error 404: Not Found" is plain
        reason = " ".join(str(err.reason if plain else err).split()) or type(err).__name__
        raise ConnectionError(
            f"could not download {spec.file} from {url} ({reason}); without internet access "
            f"put {spec.file} in a folder and set MIMOE_DATA_URL=file:///that/folder/"
        ) from err
    except BaseException:  # Ctrl-C or a bug: still no partial file left behind
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def _columns(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return list(pd.read_csv(handle, nrows=0).columns)


def load_remote(
    name: str,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
) -> MoleculeTable:
    """Fetch (once) and read a MoleculeNet dataset that is not bundled.

    Args:
        name: One of :data:`REMOTE` (``hiv``, ``bbbp``, ``sider``, ``muv``).
        base_url: Where the files are (default ``$MIMOE_DATA_URL`` or MoleculeNet's bucket).
        cache_dir: Cache folder (default ``$MIMOE_CACHE_DIR`` or ``~/.cache/mimoe``).
        limit: Keep only the first ``limit`` molecules.
    """
    path = fetch(name, base_url, cache_dir)
    spec = REMOTE[name]
    targets = list(spec.targets)
    if not targets:
        skip = {spec.smiles_col, spec.id_col, *spec.exclude}
        targets = [c for c in _columns(path) if c not in skip]
    table = read_csv(path, spec.smiles_col, targets, spec.task, id_col=spec.id_col, name=name)
    return table.head(limit) if limit is not None else table
