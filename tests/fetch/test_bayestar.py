"""The Bayestar fetch through dustmaps' own code, against a loopback Dataverse (no internet)."""

import hashlib
import json

import numpy as np
import pytest
from loopback_http import LoopbackServer, Response, block_external_network

from latentsky.fetch.bayestar import fetch_bayestar
from latentsky.simulate.dust import SimulatedDustMap, write_bayestar_h5

DOI = "10.7910/DVN/2EJ9TX"  # Bayestar19 on the Harvard Dataverse (dustmaps.bayestar.fetch)


@pytest.fixture(autouse=True)
def progress_bars_write_to_this_test(monkeypatch):
    """dustmaps' download bars (progressbar2) write to the stream that was sys.stderr when progressbar was
    first imported (a default argument and ``utils.streams.original_stderr``); under pytest that can be an
    earlier test's capture, closed since. Point both at this test's stderr (a user's process keeps its one
    stderr, so only the tests need this)."""
    import sys

    from progressbar import bar, utils

    init = bar.DefaultFdMixin.__init__
    monkeypatch.setattr(init, "__defaults__", (sys.stderr, *init.__defaults__[1:]))
    monkeypatch.setattr(utils.streams, "original_stderr", sys.stderr)


@pytest.fixture
def served_map(tmp_path):
    cfg = {
        "nside": 4,
        "n_samples": 2,
        "hole_fraction": 0.0,
        "midplane_reddening_per_kpc": 0.3,
        "scale_height_kpc": 0.1,
        "n_clouds": 2,
        "sample_scatter": 0.1,
    }
    path = write_bayestar_h5(tmp_path / "served.h5", SimulatedDustMap.from_config(cfg, seed=1))
    return path.read_bytes()


def dataverse(server, payload, md5=None):
    meta = {
        "data": {
            "latestVersion": {
                "files": [
                    {
                        "dataFile": {
                            "id": 7,
                            "filename": "bayestar2019.h5",
                            "md5": md5 or hashlib.md5(payload).hexdigest(),
                        }
                    },
                ]
            }
        }
    }
    server.route("GET", "/api/datasets/:persistentId", Response(body=json.dumps(meta).encode()))
    server.serve_bytes("/api/access/datafile/7", payload)


def test_fetch_uses_dustmaps_and_lands_at_the_output(tmp_path, served_map, monkeypatch):
    from dustmaps import fetch_utils
    from dustmaps.bayestar import BayestarQuery

    with block_external_network(), LoopbackServer() as server:
        dataverse(server, served_map)
        monkeypatch.setattr(fetch_utils, "dataverse", server.url)
        out = fetch_bayestar(tmp_path / "sources" / "bayestar.h5")
        lookups = server.requests_for("GET", "/api/datasets/:persistentId")
    assert out.read_bytes() == served_map
    assert lookups[0].query["persistentId"] == [f"doi:{DOI}"]
    assert [p.name for p in out.parent.iterdir()] == ["bayestar.h5"]  # scratch folder cleaned up
    query = BayestarQuery(map_fname=str(out), version="bayestar2019")
    assert np.isfinite(query._best_fit).all()


def test_corrupt_download_leaves_no_map(tmp_path, served_map, monkeypatch):
    from dustmaps import fetch_utils

    with block_external_network(), LoopbackServer() as server:
        dataverse(server, served_map, md5="0" * 32)  # the Dataverse's checksum does not match the bytes
        monkeypatch.setattr(fetch_utils, "dataverse", server.url)
        with pytest.raises(fetch_utils.DownloadError):
            fetch_bayestar(tmp_path / "bayestar.h5")
    assert not (tmp_path / "bayestar.h5").exists()


def test_unknown_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match="bayestar2020"):
        fetch_bayestar(tmp_path / "m.h5", version="bayestar2020")
