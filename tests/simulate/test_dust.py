"""The simulated dust map: Bayestar19 layout read back by dustmaps' own BayestarQuery, truth interpolation,
footprint and holes, monotonicity, the analytic layer, config validation, determinism."""

from __future__ import annotations

import warnings

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from conftest import default_sources_config
from scipy.integrate import quad

from latentsky.simulate.dust import (
    PIXEL_INFO_DTYPE,
    SimulatedDustMap,
    bayestar_dm_bin_edges,
    layer_reddening,
    write_bayestar_h5,
)

# The schema's defaults: the map the embedded default config builds.
DUST_CFG = default_sources_config()["dust"]["simulated"]

# BayestarQuery stores its answers as float32 after interpolating float32 map values in float64, so
# agreement with the float64 truth is limited by float32 rounding: a relative 2^-23 ≈ 1.2e-7 per value.
# 1e-6 allows a few ulp; anything wrong in the layout or the interpolation is orders of magnitude larger.
F32_RTOL = 1e-6
F32_ATOL = 1e-7


def _bayestar_query(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dustmaps warns that ~/.dustmapsrc is absent; irrelevant here
        from dustmaps.bayestar import BayestarQuery

        return BayestarQuery(map_fname=str(path), version="bayestar2019")


@pytest.fixture(scope="module")
def dust_map() -> SimulatedDustMap:
    return SimulatedDustMap.from_config(DUST_CFG, seed=7)


@pytest.fixture(scope="module")
def files(dust_map, tmp_path_factory):
    d = tmp_path_factory.mktemp("dust")
    truth = write_bayestar_h5(d / "truth.h5", dust_map, which="truth")
    observed = write_bayestar_h5(d / "observed.h5", dust_map, which="observed")
    return {"truth": truth, "observed": observed}


@pytest.fixture(scope="module")
def query_truth(files):
    return _bayestar_query(files["truth"])


@pytest.fixture(scope="module")
def query_observed(files):
    return _bayestar_query(files["observed"])


def _gal(l_deg, b_deg, d_pc=None):
    if d_pc is None:
        return SkyCoord(l=np.asarray(l_deg) * u.deg, b=np.asarray(b_deg) * u.deg, frame="galactic")
    return SkyCoord(
        l=np.asarray(l_deg) * u.deg,
        b=np.asarray(b_deg) * u.deg,
        distance=np.asarray(d_pc) * u.pc,
        frame="galactic",
    )


def test_file_layout_matches_what_bayestarquery_reads(dust_map, files):
    with h5py.File(files["truth"], "r") as f:
        info = f["pixel_info"][:]
        assert info.dtype == PIXEL_INFO_DTYPE
        assert np.array_equal(f["pixel_info"].attrs["DM_bin_edges"], dust_map.dm_bin_edges)
        assert f["samples"].shape == (dust_map.npix, DUST_CFG["n_samples"], 120)
        assert f["samples"].dtype == np.float32 and f["best_fit"].dtype == np.float32
        assert f["best_fit"].shape == (dust_map.npix, 120)
        assert np.array_equal(np.sort(info["healpix_index"]), np.arange(dust_map.npix))
        assert np.all(info["nside"] == 16)
    with h5py.File(files["observed"], "r") as f:
        hp = f["pixel_info"]["healpix_index"]
        assert np.array_equal(hp, np.flatnonzero(dust_map.observed))
        assert np.array_equal(f["best_fit"][:], dust_map.best_fit[dust_map.observed])


def test_dm_grid_is_bayestar19():
    edges = bayestar_dm_bin_edges()
    assert edges.size == 120 and edges[0] == 4.0 and np.allclose(np.diff(edges), 0.125)


def test_best_mode_at_pixel_centres_and_dm_edges_equals_map(dust_map, query_truth):
    rng = np.random.default_rng(0)
    pix = rng.choice(dust_map.npix, 150, replace=False)
    l_c, b_c = dust_map.pixel_centres()
    edges = dust_map.dm_bin_edges
    d_pc = 10.0 ** (0.2 * edges + 1.0)
    ll = np.repeat(l_c[pix], edges.size)
    bb = np.repeat(b_c[pix], edges.size)
    dd = np.tile(d_pc, pix.size)
    got = query_truth(_gal(ll, bb, dd), mode="best")
    expected = dust_map.best_fit[pix].ravel()
    np.testing.assert_allclose(got, expected, rtol=F32_RTOL, atol=F32_ATOL)
    np.testing.assert_allclose(dust_map.reddening_truth(ll, bb, dd), expected, rtol=F32_RTOL, atol=F32_ATOL)


def test_best_mode_between_before_and_after_edges(dust_map, query_truth):
    # Independent of the implementation: halfway in DM between two edges is the mean of the two
    # (linear in DM); half the first edge's distance is half its value (∝ d); beyond the last edge is
    # the last value.
    l_c, b_c = dust_map.pixel_centres()
    pix = np.arange(0, dust_map.npix, 7)
    bf = dust_map.best_fit[pix].astype(np.float64)
    edges = dust_map.dm_bin_edges
    k = 37
    mid_pc = 10.0 ** (0.2 * 0.5 * (edges[k] + edges[k + 1]) + 1.0)
    near_pc = 0.5 * 10.0 ** (0.2 * edges[0] + 1.0)
    far_pc = 2.0 * 10.0 ** (0.2 * edges[-1] + 1.0)
    for d, expected in (
        (mid_pc, 0.5 * (bf[:, k] + bf[:, k + 1])),
        (near_pc, 0.5 * bf[:, 0]),
        (far_pc, bf[:, -1]),
    ):
        dd = np.full(pix.size, d)
        np.testing.assert_allclose(
            query_truth(_gal(l_c[pix], b_c[pix], dd), mode="best"), expected, rtol=F32_RTOL, atol=F32_ATOL
        )
        np.testing.assert_allclose(
            dust_map.reddening_truth(l_c[pix], b_c[pix], dd), expected, rtol=F32_RTOL, atol=F32_ATOL
        )


def test_reddening_truth_matches_bayestarquery_anywhere(dust_map, query_truth):
    # Random positions (not pixel centres) and distances spanning all three regimes: this guards the
    # pixel lookup convention (NESTED, Galactic) as well as the distance interpolation.
    rng = np.random.default_rng(1)
    n = 20000
    ll = rng.uniform(0, 360, n)
    bb = np.rad2deg(np.arcsin(rng.uniform(-1, 1, n)))
    dd = 10.0 ** rng.uniform(0.5, 5.2, n)
    np.testing.assert_allclose(
        dust_map.reddening_truth(ll, bb, dd),
        query_truth(_gal(ll, bb, dd), mode="best"),
        rtol=F32_RTOL,
        atol=F32_ATOL,
    )


def test_samples_mode_reads_samples_and_scatters_around_best_fit(dust_map, query_truth):
    l_c, b_c = dust_map.pixel_centres()
    k = 60  # DM 11.5, 2 kpc
    d = np.full(dust_map.npix, 10.0 ** (0.2 * dust_map.dm_bin_edges[k] + 1.0))
    got = query_truth(_gal(l_c, b_c, d), mode="samples")
    assert got.shape == (dust_map.npix, DUST_CFG["n_samples"])
    np.testing.assert_allclose(got, dust_map.samples[:, :, k], rtol=F32_RTOL, atol=F32_ATOL)
    ratio = got / dust_map.best_fit[:, k][:, None]
    # Each sample is best_fit × (mean-one log-normal, fractional σ 0.1) up to smaller per-bin terms, so the
    # per-pixel mean of 5 samples has fractional σ ≈ 0.1/√5 ≈ 0.045; over 3072 pixels the grand mean is
    # 1 within 0.1/√(5·3072) ≈ 0.0018 (0.01 is > 5σ), and the spread of single samples is ≈ 0.1.
    assert abs(ratio.mean() - 1.0) < 0.01
    assert 0.08 < ratio.std() < 0.13
    assert np.median(np.abs(ratio.mean(axis=1) - 1.0)) < 0.06


def test_reddening_non_decreasing_with_distance(dust_map, query_truth):
    assert np.all(np.diff(dust_map.best_fit, axis=1) >= 0)
    assert np.all(np.diff(dust_map.samples, axis=2) >= 0)
    rng = np.random.default_rng(2)
    n_dir = 300
    ll = rng.uniform(0, 360, n_dir)
    bb = rng.uniform(-20, 20, n_dir)
    d = np.geomspace(5.0, 1e5, 400)
    L, D = np.meshgrid(ll, d, indexing="ij")
    B = np.broadcast_to(bb[:, None], L.shape)
    e = dust_map.reddening_truth(L, B, D)
    assert np.all(np.diff(e, axis=1) >= 0)
    eq = query_truth(_gal(L.ravel(), B.ravel(), D.ravel()), mode="best").reshape(L.shape)
    assert np.all(np.diff(eq, axis=1) >= 0)
    # And it is not trivially flat: within |b| < 20° the layer alone gives E(∞) ≥ ρ0 h e^(−z_sun/h) / sin|b|
    # = 0.35 · 0.1 · 0.82 / sin 22° ≈ 0.077 (22°: a pixel centre can lie ~2° beyond the direction's b).
    assert np.all(e[:, -1] > 0.07)


def test_observed_map_has_nan_in_holes_and_south_of_footprint(dust_map, query_observed):
    l_c, b_c = dust_map.pixel_centres()
    d = np.full(dust_map.npix, 2000.0)
    got = query_observed(_gal(l_c, b_c, d), mode="best")
    assert dust_map.hole.sum() > 0
    assert np.all(np.isnan(got[dust_map.hole]))
    assert np.all(np.isnan(got[~dust_map.footprint]))
    np.testing.assert_allclose(
        got[dust_map.observed],
        dust_map.reddening_truth(l_c, b_c, d)[dust_map.observed],
        rtol=F32_RTOL,
        atol=F32_ATOL,
    )
    # The footprint really is dec > −30 at the pixel centre.
    dec = _gal(l_c, b_c).icrs.dec.deg
    assert np.array_equal(dust_map.footprint, dec > -30.0)
    # has_data (used for the survey's in_dust_footprint flag) agrees with the reader for arbitrary stars.
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 5000)
    de = np.rad2deg(np.arcsin(rng.uniform(-1, 1, 5000)))
    c = SkyCoord(ra=ra * u.deg, dec=de * u.deg, distance=np.full(5000, 1000.0) * u.pc, frame="icrs")
    finite = np.isfinite(query_observed(c, mode="best"))
    assert np.array_equal(dust_map.has_data(ra, de), finite)
    assert np.array_equal(dust_map.in_footprint(ra, de) & ~dust_map.in_hole(ra, de), finite)


def test_footprint_and_hole_fractions(dust_map):
    # dec > −30° is (1 + sin 30°)/2 = 3/4 of the sphere; pixelisation at nside 16 moves a boundary ring
    # of ~100 pixels, i.e. at most ~±0.015 in fraction.
    assert abs(dust_map.footprint.mean() - 0.75) < 0.02
    n_fp = dust_map.footprint.sum()
    assert dust_map.hole.sum() == round(0.01 * n_fp)
    assert not np.any(dust_map.hole & ~dust_map.footprint)


def test_reliable_range_and_convergence(dust_map, query_truth):
    assert np.all(dust_map.dm_reliable_min < dust_map.dm_reliable_max)
    assert np.all(dust_map.dm_reliable_max <= dust_map.dm_bin_edges[-1] + 1e-6)
    # The rule narrows the range where dust is heavy. Compare at similar latitude (|b| < 10°, where the
    # latitude term differs by < 0.5 mag): the dustiest fifth reaches much less far than the clearer half
    # (A_r = 2.617 E and their E differ by > 0.5).
    _, b_c = dust_map.pixel_centres()
    e_far = dust_map.best_fit[:, -1]
    low_b = np.abs(b_c) < 10
    heavy = low_b & (e_far > np.quantile(e_far[low_b], 0.8))
    light = low_b & (e_far < np.quantile(e_far[low_b], 0.5))
    assert np.median(dust_map.dm_reliable_max[heavy]) < np.median(dust_map.dm_reliable_max[light]) - 1.0
    assert 0.5 < dust_map.converged.mean() < 1.0
    l_c, b_c = dust_map.pixel_centres()
    _, flags = query_truth(_gal(l_c, b_c), mode="best", return_flags=True)
    assert np.array_equal(flags["converged"], dust_map.converged)
    np.testing.assert_array_equal(flags["min_reliable_distmod"], dust_map.dm_reliable_min)


@pytest.mark.parametrize("b_deg", [90.0, 30.0, 3.0, 0.0, -2.0, -45.0])
def test_layer_matches_numerical_line_of_sight_integral(b_deg):
    rho0, h, z0 = 0.35, 0.1, 0.02
    s = np.sin(np.deg2rad(b_deg))
    for d in (0.05, 0.5, 3.0, 20.0):
        expected, _ = quad(
            lambda x: rho0 * np.exp(-abs(z0 + x * s) / h),
            0.0,
            d,
            points=[-z0 / s] if s else None,
            limit=200,
            epsabs=1e-13,
            epsrel=1e-11,
        )
        assert layer_reddening(b_deg, d, rho0, h, z0) == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_layer_saturates_at_high_latitude():
    # Far above the layer, E → ρ0 h exp(−z_sun/h) / sin b.
    e = layer_reddening(60.0, 50.0, 0.35, 0.1, 0.02)
    assert e == pytest.approx(0.35 * 0.1 * np.exp(-0.2) / np.sin(np.deg2rad(60.0)), rel=1e-9)


def test_same_seed_same_map_other_seed_other_map():
    a = SimulatedDustMap.from_config(DUST_CFG, seed=11)
    b = SimulatedDustMap.from_config(DUST_CFG, seed=11)
    c = SimulatedDustMap.from_config(DUST_CFG, seed=12)
    for name in ("best_fit", "samples", "hole", "dm_reliable_max"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.best_fit, c.best_fit)
    assert not np.array_equal(a.hole, c.hole)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nside", 12),
        ("nside", "16"),
        ("n_samples", 0),
        ("hole_fraction", 1.0),
        ("midplane_reddening_per_kpc", -0.1),
        ("scale_height_kpc", 0.0),
        ("n_clouds", 2.5),
        ("sample_scatter", float("nan")),
    ],
)
def test_bad_config_value_names_the_key(key, value):
    cfg = dict(DUST_CFG, **{key: value})
    with pytest.raises(ValueError, match=key):
        SimulatedDustMap.from_config(cfg, seed=0)


def test_missing_and_unknown_config_keys_are_named():
    cfg = dict(DUST_CFG)
    del cfg["scale_height_kpc"]
    with pytest.raises(ValueError, match="scale_height_kpc"):
        SimulatedDustMap.from_config(cfg, seed=0)
    with pytest.raises(ValueError, match="unknown key 'n_cloud'"):
        SimulatedDustMap.from_config(dict(DUST_CFG, n_cloud=3), seed=0)


def test_write_rejects_unknown_which(dust_map, tmp_path):
    with pytest.raises(ValueError, match="which"):
        write_bayestar_h5(tmp_path / "x.h5", dust_map, which="everything")
    assert not any(tmp_path.iterdir())


def test_read_back_from_files_gives_the_same_truth(dust_map, files):
    from latentsky.simulate.dust import read_simulated_dust_map

    back = read_simulated_dust_map(files["truth"], files["observed"])
    np.testing.assert_array_equal(back.best_fit, dust_map.best_fit)
    np.testing.assert_array_equal(back.samples, dust_map.samples)
    np.testing.assert_array_equal(back.hole, dust_map.hole)
    np.testing.assert_array_equal(back.footprint, dust_map.footprint)
    rng = np.random.default_rng(3)
    l_deg, b_deg = rng.uniform(0, 360, 500), rng.uniform(-90, 90, 500)
    d = rng.uniform(50, 20000, 500)
    np.testing.assert_array_equal(
        back.reddening_truth(l_deg, b_deg, d), dust_map.reddening_truth(l_deg, b_deg, d)
    )
    # Swapping the two files is caught: the observed file is not a full-sky truth.
    with pytest.raises(ValueError, match="full-sky truth"):
        read_simulated_dust_map(files["observed"], files["observed"])


def test_written_map_carries_provenance(dust_map, tmp_path):
    from latentsky.provenance.files import read_provenance

    path = write_bayestar_h5(tmp_path / "m.h5", dust_map, provenance={"rule": "simulate_dust_map", "seed": 7})
    assert read_provenance(path) == {"rule": "simulate_dust_map", "seed": 7}
