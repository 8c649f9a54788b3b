"""Input and environment faults end in one line and exit code 2, never a traceback.

Failed downloads, truncated or corrupt ``splits.json``, explanations folders and model
files; a folder that cannot be written. Real bugs still raise.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mimoe_core import cli
from mimoe_core.cli import main
from mimoe_core.data import Split
from mimoe_core.data.download import fetch
from mimoe_core.results import PredictionResult


def _one_line_error(capsys, command: str = "featurize") -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mimoe {command}: error: ")
    return lines[0]


# --- downloads ------------------------------------------------------------------------------


def test_download_from_a_missing_folder_is_exit_2_subprocess(tmp_path):
    env = dict(os.environ, MIMOE_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               MIMOE_DATA_URL=(tmp_path / "nowhere").as_uri() + "/")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "mimoe_core", "featurize", "--dataset", "hiv", "--out",
         str(tmp_path / "out"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "could not download HIV.csv from" in lines[0] and "MIMOE_DATA_URL=file:///" in lines[0]
    assert not (tmp_path / "cache" / "datasets" / "HIV.csv").exists()


class _Response(io.RawIOBase):
    """A response that sends ``body`` and then fails with ``error`` (or ends early)."""

    def __init__(self, body: bytes, error: BaseException | None, length: int | None = None):
        self.body, self.error, self.sent = body, error, False
        self.headers = {"Content-Length": str(length)} if length is not None else {}

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.sent:
            self.sent = True
            buffer[: len(self.body)] = self.body
            return len(self.body)
        if self.error is not None:
            raise self.error
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


ERRORS = {
    "connection": ConnectionError("Connection refused"),
    "urlerror": urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    "timeout": TimeoutError("timed out"),
    "timeouterror": TimeoutError("The read operation timed out"),
    "http": urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None),  # type: ignore[arg-type]
    "reset": ConnectionResetError(104, "Connection reset by peer"),
    "remote": http.client.RemoteDisconnected("Remote end closed connection"),
}
MID_READ = {
    "incomplete": http.client.IncompleteRead(b"x" * 10, 90),
    "reset_mid_read": ConnectionResetError(104, "Connection reset by peer"),
    "timeout_mid_read": TimeoutError("timed out"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_failed_download_is_exit_2_one_line(name, tmp_path, cache_dir, monkeypatch, capsys):
    def urlopen(*args, **kwargs):
        raise ERRORS[name]

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert main(["featurize", "--dataset", "hiv", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert "could not download HIV.csv from https://" in line and "MIMOE_DATA_URL" in line
    folder = cache_dir / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("name", sorted(MID_READ))
def test_half_download_is_not_left_as_complete(name, tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setattr(
        urllib.request, "urlopen",
        lambda *a, **k: _Response(b"smiles,HIV_active\nCCO,0\n", MID_READ[name]),
    )  # fmt: skip
    assert main(["featurize", "--dataset", "hiv", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "MIMOE_DATA_URL" in _one_line_error(capsys)
    folder = cache_dir / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_short_body_is_a_failed_download(tmp_path, cache_dir, monkeypatch):
    """A server that closes early without an error: fewer bytes than Content-Length."""
    body = b"smiles,HIV_active\nCCO,0\n"
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: _Response(body, None, length=len(body) + 50)
    )
    with pytest.raises(ConnectionError, match=r"incomplete.*MIMOE_DATA_URL"):
        fetch("hiv")
    assert not (cache_dir / "datasets" / "HIV.csv").exists()
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: _Response(body, None, length=len(body))
    )
    assert fetch("hiv").read_bytes() == body


def test_bad_mirror_address_names_the_variable(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MIMOE_DATA_URL", "not a url/")
    assert main(["featurize", "--dataset", "bbbp", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "MIMOE_DATA_URL" in _one_line_error(capsys)


# --- splits.json ----------------------------------------------------------------------------


@pytest.fixture
def split_file(tmp_path) -> Path:
    path = tmp_path / "splits.json"
    Split(np.arange(6), np.array([6, 7]), np.array([8, 9]), method="random", seed=1).save(
        path, rows=list(range(10, 20))
    )
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON"),
        (lambda t: "", "not valid JSON"),
        (lambda t: "[1, 2]", "JSON object"),
        (lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "val"}), "val"),
        (lambda t: t.replace('"method": "random"', '"method": 3'), "method"),
        (lambda t: json.dumps({**json.loads(t), "train": ["a", "b"]}), "train"),
        (lambda t: json.dumps({**json.loads(t), "train": [0, -1]}), "train"),
        (lambda t: json.dumps({**json.loads(t), "train": [[0], [1]]}), "train"),
        (lambda t: json.dumps({**json.loads(t), "test": [0, 8]}), "overlap"),
    ],
)
def test_corrupt_split_file_is_a_value_error_naming_it(split_file, damage, message):
    split_file.write_text(damage(split_file.read_text()))
    with pytest.raises(ValueError, match=message) as err:
        Split.load(split_file)
    assert str(split_file) in str(err.value)


def test_split_file_round_trip_still_works(split_file):
    split = Split.load(split_file)
    assert split.sizes() == (6, 2, 2) and split.method == "random" and split.seed == 1
    assert split.train.dtype == np.int64


def test_missing_split_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="splits.json"):
        Split.load(tmp_path / "splits.json")


# --- explanations folders (PredictionResult.save) -------------------------------------------


def _result() -> PredictionResult:
    rng = np.random.default_rng(0)
    return PredictionResult(
        task="regression", targets=["y"], ids=["a", "b"], smiles=["CCO", "xx"], rows=[0, 1],
        status=["ok", "skipped"], reason=["", "invalid SMILES"],
        prediction=np.array([[1.0], [np.nan]]), alpha=rng.random((2, 3)),
        expert_predictions=rng.random((2, 3, 1)), topo=rng.random((2, 4, 5)),
        radii=[1.0, 2.0, 3.0, 4.0], cutoffs=[2.0, 3.0, 4.0], descriptor_names=list("abcde"),
        baseline=[0.5], labels=np.array([[1.0], [np.nan]]),
        atomic_numbers=[np.array([6, 6, 8]), np.array([], dtype=np.int64)],
        positions=[rng.random((3, 3)), np.zeros((0, 3))],
    )  # fmt: skip


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGES = {
    "no_npz": lambda f: (f / "explanations.npz").unlink(),
    "no_json": lambda f: (f / "result.json").unlink(),
    "truncated_npz": lambda f: _truncate(f / "explanations.npz"),
    "empty_npz": lambda f: (f / "explanations.npz").write_bytes(b""),
    "garbage_npz": lambda f: (f / "explanations.npz").write_bytes(b"PK\x03\x04garbage" * 50),
    "truncated_json": lambda f: _truncate(f / "result.json"),
    "json_list": lambda f: (f / "result.json").write_text("[]"),
    "json_missing_key": lambda f: (f / "result.json").write_text(
        json.dumps(
            {k: v for k, v in json.loads((f / "result.json").read_text()).items() if k != "status"}
        )  # fmt: skip
    ),
    "npz_missing_array": lambda f: _rewrite_npz(f, drop="alpha"),
    "npz_wrong_rows": lambda f: _rewrite_npz(f, alpha=np.zeros((5, 3))),
    "npz_bad_counts": lambda f: _rewrite_npz(f, atom_counts=np.array([3, 9])),
    "npz_pickled": lambda f: _rewrite_npz(f, alpha=np.array([{"a": 1}, None], dtype=object)),
}


def _rewrite_npz(folder: Path, drop: str | None = None, **replace) -> None:
    with np.load(folder / "explanations.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != drop}
    arrays.update(replace)
    np.savez(folder / "explanations.npz", **arrays)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_corrupt_explanations_folder_is_a_value_error(tmp_path, damage):
    folder = tmp_path / "expl"
    _result().save(folder)
    DAMAGES[damage](folder)
    with pytest.raises(ValueError) as err:
        PredictionResult.load(folder)
    assert str(folder) in str(err.value)
    assert "\n" not in str(err.value)


def test_explanations_round_trip_and_missing_folder(tmp_path):
    _result().save(tmp_path / "expl")
    back = PredictionResult.load(tmp_path / "expl")
    assert back.status == ["ok", "skipped"] and back.num_atoms.tolist() == [3, 0]
    with pytest.raises(FileNotFoundError, match="nothing"):
        PredictionResult.load(tmp_path / "nothing")


@pytest.mark.parametrize("damage", ["truncated_npz", "truncated_json", "npz_missing_array"])
def test_report_on_corrupt_explanations_is_exit_2(tmp_path, capsys, damage):
    pytest.importorskip("plotly")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"task": "regression", "targets": ["y"]}))
    _result().save(run / "test_explained")
    DAMAGES[damage](run / "test_explained")
    assert main(["report", "--run", str(run)]) == 2
    assert "test_explained" in _one_line_error(capsys, "report")


# --- model files, output folders, real bugs -------------------------------------------------


def test_predict_with_a_truncated_model_is_exit_2(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    model = tmp_path / "run" / "model.pt"
    model.parent.mkdir()
    torch.save({"format": "x", "weights": torch.zeros(1000)}, model)
    _truncate(model)
    data = tmp_path / "in.csv"
    data.write_text("smiles\nCCO\n")
    argv = ["predict", "--model", str(model.parent), "--data", str(data), "--out",
            str(tmp_path / "p.csv"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "model.pt" in _one_line_error(capsys, "predict")


def test_unwritable_out_folder_is_exit_2(write_csv, tmp_path, capsys):
    path = write_csv([["CCO", "1"], ["CCN", "2"], ["CCC", "3"]])
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    argv = ["featurize", "--data", str(path), "--target-cols", "y", "--out", str(blocker),
            "--quiet", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 2
    assert str(blocker) in _one_line_error(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_folder_is_exit_2(write_csv, tmp_path, capsys):
    path = write_csv([["CCO", "1"], ["CCN", "2"], ["CCC", "3"]])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        argv = ["featurize", "--data", str(path), "--target-cols", "y", "--out",
                str(locked / "out"), "--quiet", "--jobs", "1"]  # fmt: skip
        assert main(argv) == 2
        assert "ermission denied" in _one_line_error(capsys)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "error",
    [json.JSONDecodeError("Expecting value", "x", 0), zipfile.BadZipFile("File is not a zip")],
)
def test_input_parse_errors_become_one_line(monkeypatch, capsys, tmp_path, error):
    def broken(args):
        raise error

    monkeypatch.setattr(cli, "build_parser", _parser_with(broken))
    assert main(["featurize", "--dataset", "esol", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys)


@pytest.mark.parametrize("error", [KeyError("x"), TypeError("bad"), AttributeError("no")])
def test_real_bugs_still_raise(monkeypatch, tmp_path, error):
    def broken(args):
        raise error

    monkeypatch.setattr(cli, "build_parser", _parser_with(broken))
    with pytest.raises(type(error)):
        main(["featurize", "--dataset", "esol", "--out", str(tmp_path)])


def _parser_with(func):
    build = cli.build_parser

    def parser():
        p = build()
        p._subparsers._group_actions[0].choices["featurize"].set_defaults(func=func)  # noqa: SLF001
        return p

    return parser


def test_train_on_a_file_without_target_cols_says_so_before_featurizing(
    write_csv, tmp_path, capsys, monkeypatch
):
    import mimoe_core.cli_train as cli_train

    def never(*_args, **_kwargs):
        raise AssertionError("featurized before the options were checked")

    monkeypatch.setattr(cli_train, "_featurize_input", never)
    path = write_csv([["CCO", "1"], ["CCN", "2"], ["CCC", "3"]])
    argv = ["train", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    line = _one_line_error(capsys, "train")
    assert "--target-cols" in line and path.name in line


def test_a_failed_featurize_leaves_no_new_out_folder(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = tmp_path / "new" / "report"
    assert main(["featurize", "--data", str(empty), "--out", str(out), "--quiet"]) == 2
    assert "is empty" in _one_line_error(capsys)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"  # a folder that was there before is left as it was
    kept.mkdir()
    assert main(["featurize", "--data", str(empty), "--out", str(kept), "--quiet"]) == 2
    assert kept.is_dir()


def test_own_warnings_become_one_line_others_keep_their_format():
    import warnings

    import mimoe_core.cli as cli

    with cli._warnings_as_lines("train"):
        ours = warnings.formatwarning("ours", UserWarning, cli.__file__, 1)
        theirs = warnings.formatwarning("theirs", UserWarning, "/elsewhere/lib.py", 7)
        with pytest.warns(UserWarning, match="recorded"):  # still reaches a recorder
            warnings.warn_explicit("recorded", UserWarning, filename=cli.__file__, lineno=1)
    assert ours == "mimoe train: warning: ours\n"
    assert theirs.startswith("/elsewhere/lib.py:7: UserWarning: theirs")
    restored = warnings.formatwarning("x", UserWarning, cli.__file__, 1)
    assert not restored.startswith("mimoe")
