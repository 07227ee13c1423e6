"""The APOGEE readers on the real DR13 and DR17 files of tests/data/apogee, the ASPCAP grid against The Payne's
wavelength file, the bad-pixel rules and The Payne's continuum on fabricated spectra with a known continuum,
the Cycle-StarNet preprocessing on the real DR17 apStar, and the one-line errors on damaged copies."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from latentsky.io.apogee import (
    ASPCAP_CHIPS,
    CYCLESTARNET_CROP,
    N_APSTAR_PIXELS,
    N_ASPCAP_PIXELS,
    PIXMASK_BAD,
    PIXMASK_BAD_SKYLINE,
    ApogeeFormatError,
    ApogeePixmask,
    apstar_wavelength,
    aspcap_wavelength,
    cannon_continuum_pixels,
    check_apogee_fits,
    flag_bad_pixels,
    normalise_for_cyclestarnet,
    payne_continuum,
    payne_fitting_mask,
    read_apstar,
    read_aspcapstar,
    to_aspcap_grid,
)

DR13_APSTAR = "apStar-r6-2M15141711+0044474.fits"
DR17_APSTAR_3 = "apStar-dr17-2M17335483-2753043.fits"  # 3 visits, S/N 154
DR17_APSTAR_1 = "apStar-dr17-2M19485057+5005279.fits"  # 1 visit, two rows
ASPCAP = {
    "2M13564148+4342587": "aspcapStar-r6-l30e.2-2M13564148+4342587.fits",
    "2M15141711+0044474": "aspcapStar-r6-l30e.2-2M15141711+0044474.fits",  # the M5 star of the DR13 apStar
    "2M17334253-1654573": "aspcapStar-r6-l30e.2-2M17334253-1654573.fits",
}
# The ASPCAP grid's chips as ranges of its own 7,214 pixels.
CHIP_RANGES = ((0, 2920), (2920, 5320), (5320, 7214))


@pytest.fixture(scope="module")
def apogee_dir(real_data):
    return real_data / "apogee"


def _hdu(path, index):
    with fits.open(path) as hdul:
        return np.asarray(hdul[index].data, dtype=np.float64)


def test_the_fixture_list_is_every_file(apogee_dir):
    on_disk = sorted(p.name for p in apogee_dir.iterdir() if p.name != "README.md")
    assert on_disk == sorted([DR13_APSTAR, DR17_APSTAR_3, DR17_APSTAR_1, *ASPCAP.values()])
    # Every file passes the check the fetcher applies before keeping a download.
    for name in on_disk:
        check_apogee_fits(apogee_dir / name, "aspcapStar" if name.startswith("aspcap") else "apStar")


# ------------------------------------------------------------------------------------------ apStar
def test_dr13_apstar_reads_the_global_and_the_pixel_row(apogee_dir):
    path = apogee_dir / DR13_APSTAR
    spec = read_apstar(path)
    assert spec.kind == "apStar" and spec.apogee_id == "2M15141711+0044474"
    assert (spec.telescope, spec.field, spec.nvisits) == ("apo25m", "M5PAL5", 8)
    assert spec.snr == pytest.approx(20.8168) and spec.params["STARFLAG"] == 70148
    assert spec.row == 1 and spec.flux.shape == spec.error.shape == spec.bitmask.shape == (N_APSTAR_PIXELS,)
    assert spec.flux.dtype == np.float64 and spec.bitmask.dtype == np.int64
    # Row 1 of HDU1–3 (NVISITS + 2 = 10 rows), read independently with astropy.
    np.testing.assert_array_equal(spec.flux, _hdu(path, 1)[1])
    np.testing.assert_array_equal(spec.error, _hdu(path, 2)[1])
    np.testing.assert_array_equal(spec.bitmask, _hdu(path, 3)[1].astype(np.int64))
    pixel = read_apstar(path, row="pixel")
    assert pixel.row == 0
    np.testing.assert_array_equal(pixel.flux, _hdu(path, 1)[0])
    # good: positive flux, positive finite error, none of the 16639 bits.
    expected = (spec.flux > 0) & (spec.error > 0) & ((spec.bitmask & 16639) == 0)
    np.testing.assert_array_equal(spec.good, expected)
    assert 0 < (~spec.good).sum() < N_APSTAR_PIXELS // 4
    with pytest.raises(ValueError, match="row must be 'global' or 'pixel'"):
        read_apstar(path, row="visit")


def test_dr17_apstar_of_three_visits(apogee_dir):
    path = apogee_dir / DR17_APSTAR_3
    spec = read_apstar(path)
    assert (spec.apogee_id, spec.field, spec.nvisits, spec.row) == ("2M17335483-2753043", "000+02", 3, 1)
    assert spec.snr == pytest.approx(154.1551207216066)
    assert spec.telescope is None  # DR17 apStar headers name no telescope; the allStar row does
    assert _hdu(path, 1).shape == (5, N_APSTAR_PIXELS)
    np.testing.assert_array_equal(spec.flux, _hdu(path, 1)[1])
    np.testing.assert_array_equal(read_apstar(path, row="pixel").flux, _hdu(path, 1)[0])
    # DR17 puts NaN outside the detectors; those pixels are not good, and none inside the ASPCAP grid is NaN.
    nan = np.isnan(spec.flux)
    assert nan.sum() == 784 and not spec.good[nan].any()
    assert not np.isnan(to_aspcap_grid(spec.flux)).any()


def test_dr17_apstar_of_one_visit_has_two_rows_and_data_only_in_row_0(apogee_dir):
    path = apogee_dir / DR17_APSTAR_1
    raw = _hdu(path, 1)
    assert raw.shape == (2, N_APSTAR_PIXELS) and np.all(raw[1] == 0)
    for row in ("global", "pixel"):
        spec = read_apstar(path, row=row)
        assert spec.row == 0 and spec.nvisits == 1 and spec.apogee_id == "2M19485057+5005279"
        np.testing.assert_array_equal(spec.flux, raw[0])
    assert spec.field == "K04_083+13" and spec.snr == pytest.approx(137.4889561519403)


def test_an_asstar_file_is_from_lco25m(apogee_dir, tmp_path):
    copy = tmp_path / "asStar-dr17-2M19485057+5005279.fits"
    shutil.copy(apogee_dir / DR17_APSTAR_1, copy)
    spec = read_apstar(copy)
    assert spec.telescope == "lco25m" and spec.apogee_id == "2M19485057+5005279"


def test_a_gzipped_copy_reads_the_same(apogee_dir, tmp_path):
    packed = tmp_path / f"{DR17_APSTAR_1}.gz"
    packed.write_bytes(gzip.compress((apogee_dir / DR17_APSTAR_1).read_bytes()))
    spec = read_apstar(packed)
    np.testing.assert_array_equal(spec.flux, read_apstar(apogee_dir / DR17_APSTAR_1).flux)
    assert spec.apogee_id == "2M19485057+5005279"
    packed.write_bytes(gzip.compress((apogee_dir / DR17_APSTAR_1).read_bytes())[:100_000])
    with pytest.raises(ApogeeFormatError, match=r"\.fits\.gz: "):
        read_apstar(packed)


def test_the_wavelength_grid_and_the_aspcap_pixels_equal_the_paynes_file(apogee_dir):
    spec = read_apstar(apogee_dir / DR17_APSTAR_3)
    np.testing.assert_array_equal(spec.wavelength, apstar_wavelength())
    assert spec.wavelength[0] == pytest.approx(15100.802, abs=1e-3)  # 10**4.179 Å, vacuum
    payne = aspcap_wavelength()
    assert payne.shape == (N_ASPCAP_PIXELS,) == (7214,)
    # The Payne's file holds the same formula's values as they rounded them (measured: 3.3e-13 relative);
    # 1e-12 is five orders below one pixel (6e-6 dex = 1.4e-5 relative).
    np.testing.assert_allclose(to_aspcap_grid(spec.wavelength), payne, rtol=1e-12, atol=0)
    # Chip boundaries: the gaps between the ASPCAP chips are the dropped apStar pixels.
    assert [hi - lo for lo, hi in ASPCAP_CHIPS] == [2920, 2400, 1894]
    assert payne[2920] == pytest.approx(spec.wavelength[3648], rel=1e-12)
    assert payne[5320] == pytest.approx(spec.wavelength[6412], rel=1e-12)


def test_the_paynes_continuum_pixels_and_fitting_mask():
    cont = cannon_continuum_pixels()
    assert cont.dtype == bool and cont.shape == (7214,) and cont.sum() == 529
    assert [int(cont[lo:hi].sum()) > 5 for lo, hi in CHIP_RANGES] == [True, True, True]
    mask = payne_fitting_mask()
    assert mask.dtype == bool and mask.sum() == 875


def test_to_aspcap_grid_refuses_other_lengths():
    values = np.arange(N_APSTAR_PIXELS)
    out = to_aspcap_grid(values)
    np.testing.assert_array_equal(out[:3], [322, 323, 324])
    np.testing.assert_array_equal(out[[2919, 2920, 5319, 5320, -1]], [3241, 3648, 6047, 6412, 8305])
    assert to_aspcap_grid(np.ones((4, N_APSTAR_PIXELS))).shape == (4, 7214)
    with pytest.raises(
        ApogeeFormatError, match=r"^flux\.fits: 8574 pixels along the last axis, expected the 8575"
    ):
        to_aspcap_grid(np.ones(8574), source="flux.fits")


# --------------------------------------------------------------------------------------- aspcapStar
@pytest.mark.parametrize("apogee_id", sorted(ASPCAP))
def test_aspcapstar_files(apogee_dir, apogee_id):
    path = apogee_dir / ASPCAP[apogee_id]
    spec = read_aspcapstar(path)
    assert spec.kind == "aspcapStar" and spec.apogee_id == apogee_id == spec.params["APOGEE_ID"]
    assert spec.flux.shape == spec.error.shape == spec.model.shape == (N_APSTAR_PIXELS,)
    assert spec.bitmask is None
    np.testing.assert_array_equal(spec.flux, _hdu(path, 1))
    np.testing.assert_array_equal(spec.model, _hdu(path, 3))
    assert spec.params["PARAM"].shape == (9,) and spec.params["X_H"].shape == (26,)
    # Spec §B4.1: flux is non-zero only within 246–3273, 3585–6079, 6344–8333 (8334 in two of the files);
    # the edges and chip gaps are 0 and not good.
    gaps = np.zeros(N_APSTAR_PIXELS, bool)
    for lo, hi in ((0, 246), (3274, 3585), (6080, 6344), (8335, N_APSTAR_PIXELS)):
        gaps[lo:hi] = True
    assert np.all(spec.flux[gaps] == 0) and not spec.good[gaps].any()
    # good = flux > 0 and 0 < error ≤ 0.05 (ASPCAP inflates the errors of the pixels it masks).
    np.testing.assert_array_equal(spec.good, (spec.flux > 0) & (spec.error > 0) & (spec.error <= 0.05))
    assert spec.good.sum() > 4000


def test_aspcapstar_values_and_the_m5_star(apogee_dir):
    giant = read_aspcapstar(apogee_dir / ASPCAP["2M17334253-1654573"])
    assert giant.params["PARAM"][0] == pytest.approx(3788.4, abs=0.1)  # Teff of the HDU4 table
    assert giant.params["CLASS"] == "GKg_c" and giant.nvisits == 2 and giant.field == "009+09"
    m5 = read_aspcapstar(apogee_dir / ASPCAP["2M15141711+0044474"])
    # Spec §B4.1: 37 % of the M5 star's 8,575 pixels have error > 0.05 (3,214 of them).
    assert np.mean(m5.error > 0.05) == pytest.approx(0.37, abs=0.01)
    assert not m5.good[m5.error > 0.05].any()
    assert (
        read_aspcapstar(apogee_dir / ASPCAP["2M15141711+0044474"], max_error=np.inf).good.sum()
        > m5.good.sum()
    )


# ------------------------------------------------------------------------------------------ bad pixels
def test_bitmask_values_are_the_documented_bit_sets():
    assert PIXMASK_BAD == 16639 and PIXMASK_BAD_SKYLINE == 20735
    names = {b.name for b in ApogeePixmask if b & PIXMASK_BAD}
    assert names == {
        "BADPIX", "CRPIX", "SATPIX", "UNFIXABLE", "BADDARK", "BADFLAT", "BADERR", "NOSKY", "NOT_ENOUGH_PSF"
    }  # fmt: skip
    assert {b.name for b in ApogeePixmask if b & PIXMASK_BAD_SKYLINE} - names == {"SIG_SKYLINE"}


def test_bitmask_on_a_fabricated_row():
    # One pixel per bit 0…14 (pixel 1000 + 10 b, inside the blue chip) and one pixel with two warning bits.
    flux = np.full(N_APSTAR_PIXELS, 500.0)
    error = np.full(N_APSTAR_PIXELS, 5.0)
    bitmask = np.zeros(N_APSTAR_PIXELS, np.int64)
    pixels = {b: 1000 + 10 * b for b in range(15)}
    for b, p in pixels.items():
        bitmask[p] = 1 << b
    bitmask[2000] = int(ApogeePixmask.PERSIST_LOW | ApogeePixmask.SIG_TELLURIC)
    for badmask, bad_bits in (
        (PIXMASK_BAD, {0, 1, 2, 3, 4, 5, 6, 7, 14}),
        (PIXMASK_BAD_SKYLINE, {0, 1, 2, 3, 4, 5, 6, 7, 12, 14}),
    ):
        f, e, good = flag_bad_pixels(flux, error, bitmask, badmask=badmask)
        assert set(np.flatnonzero(~good)) == {pixels[b] for b in bad_bits}
        np.testing.assert_array_equal(f, flux)  # flagged pixels keep their flux …
        assert np.all(e[~good] == 999 * 500.0) and np.all(e[good] == 5.0)  # … and get weight ≈ 0
        # Through the whole preprocessing: the same pixels are masked, on the ASPCAP grid after the crop.
        out = normalise_for_cyclestarnet(flux, error, bitmask, badmask=badmask)
        index = np.flatnonzero(~out.mask) + CYCLESTARNET_CROP + ASPCAP_CHIPS[0][0]
        assert set(index) == {pixels[b] for b in bad_bits}


def test_flux_at_or_below_zero_becomes_dead_the_paynes_way():
    rng = np.random.default_rng(1)
    flux = rng.uniform(50, 150, (2, 7214))
    error = np.full((2, 7214), 1.0)
    flux[0, [10, 20, 30]] = [0.0, -3.0, np.nan]
    flux[1, 40] = -1.0
    f, e, good = flag_bad_pixels(flux, error)
    assert np.all(f[0, [10, 20, 30]] == 0.01) and f[1, 40] == 0.01
    # The Payne: error = 999 · max|flux| of that spectrum, taken after the 0.01 replacement.
    for row, pixels in ((0, [10, 20, 30]), (1, [40])):
        expected = 999.0 * np.nanmax(
            np.abs(np.where(np.isnan(flux[row]) | (flux[row] <= 0), 0.01, flux[row]))
        )
        assert np.all(e[row, pixels] == expected)
    assert set(zip(*np.nonzero(~good), strict=True)) == {(0, 10), (0, 20), (0, 30), (1, 40)}
    # The Payne's own lines on row 1 give the same arrays.
    spec, specerr = flux[1].copy(), error[1].copy()
    choose = spec <= 0
    spec[choose] = 0.01
    specerr[choose] = np.max(np.abs(spec)) * 999.0
    np.testing.assert_array_equal(f[1], spec)
    np.testing.assert_array_equal(e[1], specerr)


# ---------------------------------------------------------------------------------------- continuum
def _fabricated(seed=0):
    """A spectrum = per-chip degree-4 Chebyshev continuum × absorption lines placed off the continuum pixels."""
    rng = np.random.default_rng(seed)
    cont_pixels = cannon_continuum_pixels()
    continuum = np.empty(7214)
    for lo, hi in CHIP_RANGES:
        x = 2 * np.arange(hi - lo) / (hi - lo - 1) - 1
        coef = [rng.uniform(300, 900), *rng.uniform(-60, 60, 4)]
        continuum[lo:hi] = np.polynomial.chebyshev.chebval(x, coef)
    lines = np.ones(7214)
    pixel = np.arange(7214)
    for centre in rng.choice(np.flatnonzero(~cont_pixels), 400, replace=False):
        lines *= 1 - rng.uniform(0.05, 0.6) * np.exp(-0.5 * ((pixel - centre) / 1.5) ** 2)
    lines[cont_pixels] = 1.0  # continuum pixels are continuum
    return continuum, continuum * lines, cont_pixels


def test_the_continuum_fit_recovers_a_chebyshev_continuum():
    continuum, flux, cont_pixels = _fabricated()
    error = 0.01 * continuum
    fit = payne_continuum(flux, error)
    # Noiseless: the continuum pixels lie on a degree-4 polynomial per chip, which the fit reproduces up to
    # the rounding of a 5-parameter least-squares problem (condition ~10 on [-1, 1]) — everywhere on the chip.
    np.testing.assert_allclose(fit, continuum, rtol=1e-10)
    # A flagged continuum pixel (weight 0) with a cosmic-ray spike does not move the fit.
    spiked = flux.copy()
    hit = np.flatnonzero(cont_pixels)[100]
    spiked[hit] = 1e6
    good = np.ones(7214, bool)
    good[hit] = False
    np.testing.assert_allclose(payne_continuum(spiked, error, good=good), continuum, rtol=1e-10)
    assert np.max(np.abs(payne_continuum(spiked, error) / continuum - 1)) > 0.1  # unflagged, it would


def test_the_continuum_fit_with_noise_is_within_its_statistical_error():
    continuum, flux, cont_pixels = _fabricated(seed=3)
    sigma = 0.01 * continuum  # S/N 100
    noisy = flux + np.random.default_rng(4).normal(0, 1, 7214) * sigma
    fit = payne_continuum(noisy, sigma)
    # The prediction error of weighted least squares at pixel j is sqrt(v_j (VᵀWV)⁻¹ v_jᵀ) (v_j the Chebyshev
    # row of pixel j, W = 1/σ²); 5 such standard deviations bound every continuum pixel.
    for lo, hi in CHIP_RANGES:
        x = 2 * np.arange(hi - lo) / (hi - lo - 1) - 1
        on = cont_pixels[lo:hi]
        vander = np.polynomial.chebyshev.chebvander(x, 4)
        cov = np.linalg.inv(vander[on].T @ (vander[on] / sigma[lo:hi][on, None] ** 2))
        std = np.sqrt(np.einsum("ij,jk,ik->i", vander, cov, vander))
        z = (fit[lo:hi] - continuum[lo:hi]) / std
        assert np.all(np.abs(z[on]) < 5)
        assert 0.3 < np.std(z[on]) < 3  # the errors are of the predicted size, not far smaller (no overfit)


def test_the_continuum_equals_the_paynes_code_on_the_dr13_apstar(apogee_dir):
    spec = read_apstar(apogee_dir / DR13_APSTAR)
    flux, error = to_aspcap_grid(spec.flux), to_aspcap_grid(spec.error)
    # The Payne's process_spectra + utils.get_apogee_continuum, line by line.
    choose = flux <= 0
    flux[choose] = 0.01
    error[choose] = np.max(np.abs(flux)) * 999.0
    cont_pixels = cannon_continuum_pixels()
    theirs = np.empty_like(flux)
    for lo, hi in CHIP_RANGES:
        wav = 2 * np.arange(hi - lo) / (hi - lo - 1) - 1
        px = cont_pixels[lo:hi]
        chpoly = np.polynomial.Chebyshev.fit(wav[px], flux[lo:hi][px], 4, w=1.0 / error[lo:hi][px])
        theirs[lo:hi] = chpoly(wav)
    # Same least-squares problem in another Chebyshev basis: equal to rounding (measured 3e-15).
    np.testing.assert_allclose(payne_continuum(flux, error), theirs, rtol=1e-10)
    # Batches give the rows' own fits.
    both = payne_continuum(np.stack([flux, 2 * flux]), np.stack([error, 2 * error]))
    np.testing.assert_allclose(both, np.stack([theirs, 2 * theirs]), rtol=1e-10)


def test_a_chip_without_continuum_pixels_is_refused():
    continuum, flux, _ = _fabricated()
    good = np.ones(7214, bool)
    good[5320:] = False
    with pytest.raises(ValueError, match=r"^star\.fits: 0 usable continuum pixels on the red chip"):
        payne_continuum(flux, 0.01 * continuum, good=good, source="star.fits")


# ------------------------------------------------------------------------------ Cycle-StarNet domain
def test_the_real_dr17_apstar_in_the_observed_domain(apogee_dir):
    spec = read_apstar(apogee_dir / DR17_APSTAR_3)
    out = spec.for_cyclestarnet()
    assert out.flux.shape == out.error.shape == out.mask.shape == (7167,)
    assert out.mask.dtype == bool and np.isfinite(out.flux).all() and np.isfinite(out.error).all()
    assert np.all(out.error >= 0.005) and not out.mask[out.error > 0.05].any()
    on_cont = cannon_continuum_pixels()[CYCLESTARNET_CROP:] & out.mask
    # The fit's continuum passes through the continuum pixels: their median normalised flux is 1 to better than
    # Cycle-StarNet's error floor (0.005), the smallest difference the network is told to care about.
    assert abs(np.median(out.flux[on_cont]) - 1) < 0.005
    # Lines lie below the continuum: the median over all pixels is below 1 (an M giant full of CO/OH lines).
    assert np.median(out.flux[out.mask]) < 0.97
    # S/N 154 star: most pixels pass the 0.05 error cut.
    assert out.mask.mean() > 0.9
    # The same from the arrays, and crop is a parameter: 47 = the first 47 of the full 7,214.
    full = normalise_for_cyclestarnet(spec.flux, spec.error, spec.bitmask, crop=0, source=str(spec.path))
    assert full.flux.shape == (7214,)
    for a, b in zip(out, full, strict=True):
        np.testing.assert_array_equal(a, b[47:])


def test_the_single_visit_and_the_m5_star_in_the_observed_domain(apogee_dir):
    one = read_apstar(apogee_dir / DR17_APSTAR_1).for_cyclestarnet()
    m5 = read_apstar(apogee_dir / DR13_APSTAR).for_cyclestarnet()
    for out in (one, m5):
        on_cont = cannon_continuum_pixels()[CYCLESTARNET_CROP:] & out.mask
        assert abs(np.median(out.flux[on_cont]) - 1) < 0.005  # as above
    # S/N 21: the 0.05 error cut masks a much larger share than at S/N 137.
    assert m5.mask.mean() < one.mask.mean() - 0.1
    # A batch is the rows' own results.
    a = read_apstar(apogee_dir / DR13_APSTAR)
    b = read_apstar(apogee_dir / DR17_APSTAR_1)
    batch = normalise_for_cyclestarnet(
        np.stack([a.flux, b.flux]), np.stack([a.error, b.error]), np.stack([a.bitmask, b.bitmask])
    )
    for i, single in enumerate((m5, one)):
        np.testing.assert_allclose(batch.flux[i], single.flux, rtol=1e-12)
        np.testing.assert_array_equal(batch.mask[i], single.mask)


def test_aspcap_normalisation_keeps_the_aspcap_flux(apogee_dir):
    spec = read_aspcapstar(apogee_dir / ASPCAP["2M17334253-1654573"])
    out = spec.for_cyclestarnet()
    flux = to_aspcap_grid(spec.flux)[47:]
    error = to_aspcap_grid(spec.error)[47:]
    assert out.flux.shape == (7167,)
    good = to_aspcap_grid(spec.good)[47:]
    # No continuum division: the ASPCAP flux and its floored error where the reader found the pixel good …
    np.testing.assert_array_equal(out.flux[good], flux[good])
    np.testing.assert_array_equal(out.error[good], np.maximum(error[good], 0.005))
    np.testing.assert_array_equal(out.mask, good)  # (good already means error ≤ 0.05)
    # … and on the rest an error above the cut: ASPCAP's inflated one, or The Payne's dead-pixel error
    # (999 · max|flux|) where the flux is 0.
    assert np.all(out.error[~good] > 0.05) and (~good).sum() > 500
    zero = flux == 0
    assert zero.sum() > 0 and np.all(out.error[zero] == 999 * np.max(to_aspcap_grid(spec.flux)))
    with pytest.raises(ValueError, match="normalisation must be 'payne' or 'aspcap'"):
        spec.for_cyclestarnet(normalisation="bovy")
    with pytest.raises(ValueError, match=r"crop must be in \[0, 7214\)"):
        spec.for_cyclestarnet(crop=7214)
    with pytest.raises(ApogeeFormatError, match="^x.fits: flux has 7000 pixels, expected 8575 .* or 7214"):
        normalise_for_cyclestarnet(np.ones(7000), np.ones(7000), source="x.fits")


# ----------------------------------------------------------------------------------- damaged files
def _one_line(exc_info):
    assert "\n" not in str(exc_info.value)
    return str(exc_info.value)


def test_a_spectrum_of_the_wrong_length_names_the_file_and_the_length(apogee_dir, tmp_path):
    short = tmp_path / "apStar-dr17-short.fits"
    with fits.open(apogee_dir / DR17_APSTAR_1) as hdul:
        for i in (1, 2, 3):
            hdul[i].data = hdul[i].data[:, :8000]
        hdul.writeto(short)
    with pytest.raises(ApogeeFormatError) as exc:
        read_apstar(short)
    assert _one_line(exc).startswith(
        f"{short}: HDU1 (flux) has shape (2, 8000), expected 8575 pixels per row"
    )
    with pytest.raises(ApogeeFormatError, match=r"HDU1 \(flux\) has shape \(2, 8000\)"):
        check_apogee_fits(short, "apStar")
    aspcap = tmp_path / "aspcapStar-short.fits"
    with fits.open(apogee_dir / ASPCAP["2M13564148+4342587"]) as hdul:
        hdul[3].data = hdul[3].data[:8574]
        hdul.writeto(aspcap, output_verify="silentfix")
    with pytest.raises(ApogeeFormatError) as exc:
        read_aspcapstar(aspcap)
    assert _one_line(exc).startswith(f"{aspcap}: HDU3 (model) has shape (8574,), expected 8575 pixels")


def test_a_missing_hdu_names_the_file_and_the_hdu(apogee_dir, tmp_path):
    two = tmp_path / "apStar-r6-two-hdus.fits"
    with fits.open(apogee_dir / DR13_APSTAR) as hdul:
        fits.HDUList(hdul[:3]).writeto(two)
    with pytest.raises(ApogeeFormatError) as exc:
        read_apstar(two)
    assert _one_line(exc).startswith(f"{two}: no HDU3 (bitmask); the file has 3 HDUs")
    aspcap = tmp_path / "aspcapStar-no-model.fits"
    with fits.open(apogee_dir / ASPCAP["2M13564148+4342587"]) as hdul:
        fits.HDUList(hdul[:3]).writeto(aspcap, output_verify="silentfix")
    with pytest.raises(ApogeeFormatError, match=r"^.*aspcapStar-no-model\.fits: no HDU3 \(model\)"):
        read_aspcapstar(aspcap)
    # A float "bitmask" (an aspcapStar's model where an apStar's bits belong) is refused too.
    with pytest.raises(ApogeeFormatError, match=r"HDU3 \(bitmask\) holds float32 values, expected integer"):
        read_apstar(apogee_dir / ASPCAP["2M13564148+4342587"])


def test_truncated_and_foreign_files(apogee_dir, tmp_path):
    raw = (apogee_dir / DR17_APSTAR_1).read_bytes()
    # HDU2 (error) occupies bytes 152,640–289,840 and HDU3 (bitmask) 293,760–430,960: cuts inside them.
    for cut in (200_000, 400_000):
        path = tmp_path / f"apStar-cut-{cut}.fits"
        path.write_bytes(raw[:cut])
        with pytest.raises(ApogeeFormatError) as exc:
            read_apstar(path)
        assert _one_line(exc).startswith(f"{path}: truncated file ({cut} bytes)")
    # Cut inside the visit tables (HDU9/10): the spectrum reads, but the strict check before keeping a download
    # refuses the file.
    late = tmp_path / "apStar-cut-late.fits"
    late.write_bytes(raw[:1_000_000])
    np.testing.assert_array_equal(read_apstar(late).flux, read_apstar(apogee_dir / DR17_APSTAR_1).flux)
    with pytest.raises(ApogeeFormatError, match="bytes after the last complete HDU"):
        check_apogee_fits(late, "apStar")
    check_apogee_fits(apogee_dir / DR17_APSTAR_1, "apStar")  # the complete file passes
    html = tmp_path / "apStar-error-page.fits"
    html.write_bytes(b"<html><body>404 Not Found</body></html>")
    with pytest.raises(ApogeeFormatError) as exc:
        read_apstar(html)
    assert _one_line(exc).startswith(f"{html}: not a FITS file")


def test_another_wavelength_grid_is_refused(apogee_dir, tmp_path):
    path = tmp_path / "apStar-shifted.fits"
    with fits.open(apogee_dir / DR13_APSTAR) as hdul:
        hdul[1].header["CRVAL1"] = 4.18
        hdul.writeto(path)
    with pytest.raises(
        ApogeeFormatError, match=r"HDU1 grid log10 λ = 4\.18 \+ 6e-06 i, expected the apStar grid"
    ):
        read_apstar(path)


def test_a_row_without_flux_is_refused(apogee_dir, tmp_path):
    path = tmp_path / "apStar-empty-row.fits"
    with fits.open(apogee_dir / DR17_APSTAR_3) as hdul:
        hdul[1].data[1] = 0.0
        hdul.writeto(path)
    with pytest.raises(ApogeeFormatError, match=r"HDU1 \(flux\) row 1 holds no flux"):
        read_apstar(path)
    assert read_apstar(path, row="pixel").row == 0
