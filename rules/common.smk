# Shared helpers (paths, partitions, seeds) used across the workflow; it defines no jobs.
from latentsky.config import derive_seed
from latentsky.healpix import npix

RESULTS = "results"
LOGS = f"{RESULTS}/logs"
METRICS = f"{RESULTS}/metrics"
FIGURES = f"{RESULTS}/figures"

GAIA_ORDER = config["sources"]["gaia"]["partition_order"]
GAIA_PARTITIONS = list(range(npix(GAIA_ORDER)))

# Source layout follows HATS' Norder=/Npix= naming so a partition's path says which sky it covers.
GAIA_PARTITION = f"{RESULTS}/sources/gaia/Norder={GAIA_ORDER}/Npix={{pixel}}.parquet"
GAIA_TRUTH_PARTITION = (
    f"{RESULTS}/sources/gaia_truth/Norder={GAIA_ORDER}/Npix={{pixel}}.parquet"
)
DUST_MAP = f"{RESULTS}/sources/dust/bayestar.h5"
DUST_TRUTH_MAP = f"{RESULTS}/sources/dust_truth/bayestar_fullsky.h5"

MANIFEST = f"{RESULTS}/release/manifest.parquet"
MANIFEST_SHA256 = f"{RESULTS}/release/manifest.sha256"

UNAVAILABLE_KINDS = {
    (
        "gaia",
        "gaia_archive",
    ): "the Gaia archive fetchers arrive with the distance pipeline",
    (
        "dust",
        "bayestar19",
    ): "the Bayestar19 fetch rule arrives with the distance pipeline",
}
for (_source, _kind), _why in UNAVAILABLE_KINDS.items():
    if config["sources"][_source]["kind"] == _kind:
        raise WorkflowError(
            f"config sources.{_source}.kind = {_kind!r} is not available in this version: {_why}. "
            f"Use kind: simulated."
        )


def seed_for(stage):
    """Seed of a stage, derived from the master seed (see latentsky.config.derive_seed)."""
    return derive_seed(config["seed"], stage)


def gaia_partitions(pattern):
    return expand(pattern, pixel=GAIA_PARTITIONS)


def released_files():
    """Every file the release lists (and `latentsky audit` can check)."""
    return [
        *gaia_partitions(GAIA_PARTITION),
        *gaia_partitions(GAIA_TRUTH_PARTITION),
        DUST_MAP,
        DUST_TRUTH_MAP,
        f"{METRICS}/sources.json",
        f"{FIGURES}/sources/gaia_cmd.png",
        f"{FIGURES}/sources/dust_map.png",
    ]
