import pytest

from mimoe_core.data import load_dataset
from mimoe_core.data.download import fetch, load_remote

BBBP = (
    "num,name,p_np,smiles\n"
    "1,Propanolol,1,CC(C)NCC(O)COc1cccc2ccccc12\n"
    "2,Terbutylchlorambucil,1,O=C(OC(C)(C)C)CCCc1ccc(cc1)N(CCCl)CCCl\n"
    "3,bad,,CCO\n"
)
SIDER = "smiles,Hepatobiliary disorders,Metabolism and nutrition disorders\nCCO,1,0\nc1ccccc1,0,1\n"


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "BBBP.csv").write_text(BBBP)
    import gzip

    with gzip.open(folder / "sider.csv.gz", "wt") as handle:
        handle.write(SIDER)
    monkeypatch.setenv("MIMOE_DATA_URL", folder.as_uri() + "/")
    return folder


def test_download_from_local_mirror_and_read(mirror):
    table = load_dataset("bbbp")
    assert table.task == "classification"
    assert table.target_names == ["p_np"]
    assert table.ids == ["Propanolol", "Terbutylchlorambucil"]
    assert table.n_rows == 3 and len(table.skipped) == 1  # the unlabelled row is reported
    assert "no label" in table.skipped[0].reason


def test_targets_default_to_every_label_column(mirror):
    table = load_remote("sider")
    assert table.target_names == ["Hepatobiliary disorders", "Metabolism and nutrition disorders"]
    assert table.targets.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_fetched_once_then_read_from_cache(mirror):
    first = fetch("bbbp")
    (mirror / "BBBP.csv").unlink()
    assert fetch("bbbp") == first
    assert len(load_dataset("bbbp")) == 2


def test_failed_download_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMOE_DATA_URL", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(ConnectionError, match="MIMOE_DATA_URL"):
        fetch("hiv")
    assert not list((tmp_path).rglob("*.part"))


def test_unknown_remote_name():
    with pytest.raises(ValueError, match="known: hiv, bbbp, sider, muv"):
        fetch("pcba")
