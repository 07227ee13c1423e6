"""One line-of-sight lookup per star: the profile's E(d) must equal dustmaps' own answer at any distance."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from conftest import default_sources_config

from latentsky.distances.dust import BayestarDust
from latentsky.simulate.dust import SimulatedDustMap, write_bayestar_h5


@pytest.fixture(scope="module")
def observed_map(tmp_path_factory):
    dust_map = SimulatedDustMap.from_config(default_sources_config()["dust"]["simulated"], seed=7)
    return BayestarDust(
        write_bayestar_h5(tmp_path_factory.mktemp("dust") / "observed.h5", dust_map, which="observed")
    )


def test_profile_interpolation_equals_bayestarquery_at_every_distance(observed_map):
    rng = np.random.default_rng(3)
    n = 400
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-25, 85, n)
    cov = observed_map.coverage(ra, dec)
    ra, dec = ra[cov.in_map], dec[cov.in_map]
    # Distances in front of the first node (E ∝ d), between nodes, and beyond the last (constant).
    d = np.exp(rng.uniform(np.log(10.0), np.log(2e5), len(ra)))
    profiles = observed_map.profiles(ra, dec)
    got = profiles.reddening((5 * np.log10(d) - 5)[:, None])[:, :, 0]
    want = observed_map.samples(ra, dec, d)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The median profile, as the grid's default uses it, is the median of the samples at the nodes.
    med = profiles.reddening((5 * np.log10(d) - 5)[:, None], median=True)[:, 0, 0]
    assert np.all(med >= want.min(axis=1) - 1e-6) and np.all(med <= want.max(axis=1) + 1e-6)


def test_profile_carries_the_maps_reliable_range_and_convergence(observed_map):
    ra, dec = np.array([10.0, 200.0]), np.array([40.0, 20.0])
    profiles = observed_map.profiles(ra, dec)
    coords = SkyCoord(ra=ra * u.deg, dec=dec * u.deg)
    _, flags = observed_map._query(coords, mode="median", return_flags=True)
    np.testing.assert_allclose(profiles.dm_reliable_min, flags["min_reliable_distmod"])
    np.testing.assert_allclose(profiles.dm_reliable_max, flags["max_reliable_distmod"])
    assert profiles.converged.tolist() == flags["converged"].tolist()
    assert np.all(profiles.dm_reliable_min < profiles.dm_reliable_max)


def test_extinction_is_stated_per_bayestar_unit():
    # Green et al. (2019) Table 1: one Bayestar19 unit is E(g−r) = 3.518 − 2.617 = 0.901 mag, and paper
    # 004 gives its coefficients per magnitude of E(g−r).
    from latentsky.extinction import CRANMER2020

    assert CRANMER2020.a_g == pytest.approx(2.71 * 0.901)
    assert CRANMER2020.e_bp_rp == pytest.approx(0.85 * 0.901)
    assert CRANMER2020.e_bp_g == pytest.approx(0.39 * 0.901)
