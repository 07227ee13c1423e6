"""The DESI reader (paper 003 Sec. 2) on the real coadd + Redrock pair in tests/data/desi_coadd."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from conftest import REAL_DATA

from latentsky.io.desi import (
    NORM_WINDOW_REST,
    DesiFlag,
    DesiFormatError,
    desi_wavelength_grid,
    read_desi_coadd,
    skyline_mask,
)

COADD = REAL_DATA / "desi_coadd" / "coadd-4-80613-thru20210324.fits"
REDROCK = REAL_DATA / "desi_coadd" / "redrock-4-80613-thru20210324.fits"
Z_REDROCK = 0.36874355


@pytest.fixture(scope="module")
def spectra():
    return read_desi_coadd(COADD)


@pytest.fixture(scope="module")
def raw():
    with fits.open(COADD) as h:
        return {
            arm: {
                k: np.asarray(h[f"{arm}_{k}"].data, dtype=np.float64)
                for k in ("WAVELENGTH", "FLUX", "IVAR", "MASK")
            }
            for arm in ("B", "R", "Z")
        }


def test_grid_covers_the_observed_range(spectra):
    assert spectra.wave[0] == 3600.0 and spectra.wave[-1] == 9824.0 and spectra.wave.size == 7781
    np.testing.assert_allclose(np.diff(spectra.wave), 0.8, atol=1e-9)
    assert spectra.flux.shape == spectra.ivar.shape == (1, 7781)
    assert spectra.target_id.tolist() == [39633345008634465]
    assert spectra.z[0] == pytest.approx(Z_REDROCK) and spectra.spectype[0] == "GALAXY"
    assert spectra.flags.tolist() == [0]  # GALAXY, ZWARN 0, z in [0, 0.8], good fibre: in the sample


def test_arms_combine_by_inverse_variance_in_the_overlaps(spectra, raw):
    b, r = raw["B"], raw["R"]
    sky = skyline_mask(spectra.wave)
    norm = spectra.norm[0]
    # Every B/R overlap pixel that neither arm masks and no sky line touches: the dichroic overlap,
    # 5760–5800 Å, holds ~50 grid pixels.
    checked = 0
    for ib, w in enumerate(b["WAVELENGTH"]):
        ir = np.flatnonzero(np.abs(r["WAVELENGTH"] - w) < 1e-4)
        ig = np.argmin(np.abs(spectra.wave - w))
        if ir.size == 0 or sky[ig] or b["MASK"][0, ib] or r["MASK"][0, ir[0]]:
            continue
        wb, wr = b["IVAR"][0, ib], r["IVAR"][0, ir[0]]
        if not (wb > 0 and wr > 0):
            continue
        flux = (wb * b["FLUX"][0, ib] + wr * r["FLUX"][0, ir[0]]) / (wb + wr)
        assert spectra.flux[0, ig] * norm == pytest.approx(flux, rel=1e-5, abs=1e-6)
        assert spectra.ivar[0, ig] / norm**2 == pytest.approx(wb + wr, rel=1e-5)
        checked += 1
    assert checked >= 20


def test_masked_and_sky_pixels_have_zero_weight(spectra, raw):
    sky = skyline_mask(spectra.wave)
    # spender's sky-line mask: the top ~100 lines, ≥ 5 Å each — about a quarter of the pixels (paper: ~25 %).
    assert 0.2 < sky.mean() < 0.3
    assert np.all(spectra.ivar[0, sky] == 0)
    # Z-arm pixels that DESI masked (and no other arm covers) carry no weight.
    z = raw["Z"]
    masked = z["WAVELENGTH"][(z["MASK"][0] != 0) & (z["WAVELENGTH"] > 7700)]
    grid = desi_wavelength_grid()
    assert np.all(spectra.ivar[0, np.searchsorted(grid, masked - 1e-4)] == 0)
    assert np.isfinite(spectra.flux).all()


def test_normalised_to_the_restframe_window_median(spectra):
    rest = spectra.wave / (1 + spectra.z[0])
    window = (rest > NORM_WINDOW_REST[0]) & (rest < NORM_WINDOW_REST[1]) & (spectra.ivar[0] > 0)
    # Restframe 5300–5850 Å at z = 0.3687 is observed 7254–8007 Å, inside the Z arm.
    assert spectra.wave[window].min() > 7250 and spectra.wave[window].max() < 8010 and window.sum() > 300
    assert np.median(spectra.flux[0, window]) == pytest.approx(1.0, abs=1e-6)
    assert 0.1 < spectra.norm[0] < 10  # 1e-17 erg/s/cm²/Å: a BGS galaxy's continuum


def test_sample_cuts_are_flags_not_drops():
    stars = read_desi_coadd(COADD, spectype="STAR")
    assert len(stars) == 1 and stars.flags[0] == DesiFlag.SPECTYPE and stars.flag_names() == ["spectype"]
    low_z = read_desi_coadd(COADD, z_range=(0.0, 0.3))
    assert low_z.flags[0] & DesiFlag.Z_RANGE
    table = low_z.table()
    assert len(table) == 1 and len(table.loc[0, "flux"]) == 7781 and table.loc[0, "flag_names"] == "z_range"


def test_bad_files_are_named(tmp_path):
    truncated = tmp_path / "coadd-trunc.fits"
    truncated.write_bytes(COADD.read_bytes()[:20000])
    with pytest.raises(DesiFormatError, match="coadd-trunc.fits"):
        read_desi_coadd(truncated, REDROCK)
    with fits.open(COADD) as h:
        hdus = fits.HDUList([hdu.copy() for hdu in h if hdu.name != "R_FLUX"])
        hdus.writeto(tmp_path / "coadd-nor.fits")
    with pytest.raises(DesiFormatError, match="R_FLUX"):
        read_desi_coadd(tmp_path / "coadd-nor.fits", REDROCK)
    # A Redrock file without the target: the row stays, flagged.
    with fits.open(REDROCK) as h:
        hdus = fits.HDUList([hdu.copy() for hdu in h])
        hdus["REDSHIFTS"].data["TARGETID"][:] = 1
        hdus.writeto(tmp_path / "redrock-other.fits")
    other = read_desi_coadd(COADD, tmp_path / "redrock-other.fits")
    assert (
        other.flags[0] & DesiFlag.NO_REDSHIFT and other.flags[0] & DesiFlag.NO_NORM and np.isnan(other.z[0])
    )


def test_a_file_cut_inside_its_data_a_shifted_grid_and_a_missing_redrock_are_named(tmp_path):
    """Headers intact but the last extension's data cut short (astropy reads data lazily, so the failure
    comes late and named nothing); an arm off the DESI grid; no Redrock file beside the coadd."""
    cut = tmp_path / "coadd-cut.fits"
    cut.write_bytes(COADD.read_bytes()[:300_000])
    with pytest.raises(DesiFormatError, match=r"coadd-cut.fits: extension \w+ cannot be read — truncated"):
        read_desi_coadd(cut, REDROCK)
    with fits.open(COADD) as h:
        hdus = fits.HDUList([hdu.copy() for hdu in h])
        hdus["Z_WAVELENGTH"].data = hdus["Z_WAVELENGTH"].data + 0.3
        hdus.writeto(tmp_path / "coadd-shifted.fits")
    with pytest.raises(
        DesiFormatError, match="coadd-shifted.fits: Z_WAVELENGTH pixel .* not on the DESI grid"
    ):
        read_desi_coadd(tmp_path / "coadd-shifted.fits", REDROCK)
    with pytest.raises(DesiFormatError, match="redrock-shifted.fits: not a readable Redrock FITS file"):
        read_desi_coadd(COADD, tmp_path / "redrock-shifted.fits")


def test_a_class_without_targets_reads_as_an_empty_sample():
    """The coadd's one target is BGS: asking for MWS gives no rows (not an error: a tile may have none)."""
    mws = read_desi_coadd(COADD, target_class="mws")
    assert len(mws) == 0 and mws.flux.shape == (0, 7781)
    assert len(read_desi_coadd(COADD, target_class="bgs")) == 1
