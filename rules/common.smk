# Shared helpers (paths, partitions, seeds) used across the workflow; it defines no jobs.
import json
from pathlib import Path

from latentsky.config import derive_seed
from latentsky.io.healpix import npix

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

# OGLE-III sources (rules/crossmatch.smk).
OGLE_KIND = config["ogle"]["kind"]
OGLE_ARCHIVE = config["ogle"]["archive"]
OGLE_DIR = f"{RESULTS}/sources/ogle"
OGLE_ARCHIVE_DIR = f"{RESULTS}/sources/ogle3_archive"
# Truth exists only for the simulated fields.
OGLE_TABLES = {
    name: f"{OGLE_DIR}/{name}.parquet"
    for name in ("objects", "light_curves", "gaia")
    + (("truth",) if OGLE_KIND == "simulated" else ())
}


def ogle3_catalog_files(name):
    """The fetched OGLE-III catalog directories' tables (ogle.archive.catalogs: "target/class")."""
    return [
        f"{OGLE_ARCHIVE_DIR}/{entry.lower()}/{name}.parquet"
        for entry in OGLE_ARCHIVE["catalogs"]
    ]


MANIFEST = f"{RESULTS}/release/manifest.parquet"
MANIFEST_SHA256 = f"{RESULTS}/release/manifest.sha256"

GAIA_KIND = config["sources"]["gaia"]["kind"]
DUST_KIND = config["sources"]["dust"]["kind"]
SIMULATED = GAIA_KIND == "simulated"
# Beside, not inside, the partition directory, which stays a plain Parquet dataset.
GAIA_PARTITION_INDEX = f"{RESULTS}/sources/gaia_partition_index.json"

DISTANCES = config["distances"]
CMD_FLOW_DIR = f"{RESULTS}/models/cmd_flow"
CMD_FLOW_MODEL = f"{CMD_FLOW_DIR}/model.pt"
DISTANCE_CATALOG = f"{RESULTS}/catalogs/distances"
# HATS layout: dataset/Norder=N/Dir=D/Npix=P.parquet with D = 10000 · (P // 10000).
DISTANCE_PARTITION = (
    f"{DISTANCE_CATALOG}/dataset/Norder={GAIA_ORDER}/Dir={{dir}}/Npix={{pixel}}.parquet"
)
# Catalog-level HATS files. The two Parquet footers carry the provenance of the job that wrote them and
# are released; the text files (hats.properties, properties, partition_info.csv) are derived from them.
DISTANCE_CATALOG_METADATA = [
    f"{DISTANCE_CATALOG}/dataset/_metadata",
    f"{DISTANCE_CATALOG}/dataset/_common_metadata",
]
DISTANCE_CATALOG_TEXT = [
    f"{DISTANCE_CATALOG}/{name}"
    for name in ("hats.properties", "properties", "partition_info.csv")
]

ARCHIVE = config["sources"]["gaia"]["archive"]
GAIA_RAW_SUFFIX = ".csv.gz" if ARCHIVE["method"] == "bulk" else ".vot.gz"
GAIA_RAW_PARTITION = (
    f"{RESULTS}/sources/gaia_raw/Norder={GAIA_ORDER}/Npix={{pixel}}{GAIA_RAW_SUFFIX}"
)
if GAIA_KIND == "gaia_archive" and ARCHIVE["partitions"]:
    GAIA_PARTITIONS = sorted(set(ARCHIVE["partitions"]))
    _bad = [p for p in GAIA_PARTITIONS if p >= npix(GAIA_ORDER)]
    if _bad:
        raise WorkflowError(
            f"config sources.gaia.archive.partitions: {_bad} do not exist at partition_order {GAIA_ORDER} "
            f"(0..{npix(GAIA_ORDER) - 1})"
        )

if DISTANCES["dust"]["kind"] == "map" and DUST_KIND == "none":
    raise WorkflowError(
        "config distances.dust.kind is 'map' but sources.dust.kind is 'none': give a map "
        "(sources.dust.kind simulated or bayestar19) or set distances.dust.kind to none or constant"
    )


def published_xmatch_tables(wildcards=None):
    """The authors' five OGLE-III × Gaia DR2 tables in crossmatch.published_tables (checked at parse time)."""
    from latentsky.io.ogle import PUBLISHED_XMATCH_TABLES

    directory = Path(config["crossmatch"]["published_tables"])
    missing = [n for n in PUBLISHED_XMATCH_TABLES if not (directory / n).is_file()]
    if missing:
        raise WorkflowError(
            f"config crossmatch.published_tables = {str(directory)!r}: missing {missing} there. Point it at "
            "the directory of the PELS-VAE authors' tables (../shared/data/ogle3_gaiadr2_xmatch beside a "
            "checkout) or set it to null to skip the comparison with the published cross-match."
        )
    return [str(directory / n) for n in PUBLISHED_XMATCH_TABLES]


PELSVAE = config["pelsvae"]
PELSVAE_DIR = f"{RESULTS}/models/pelsvae"
# The two generative models of paper 000 Sec. 4.2: cvae (class only) and cvae_p (class + physics).
PELSVAE_MODELS = ["cvae", "cvae_p"]
PELSVAE_MODEL = f"{PELSVAE_DIR}/{{model}}/model.pt"
PELSVAE_REGRESSORS = f"{PELSVAE_DIR}/{{model}}/regressors.pt"
PELSVAE_OUTPUTS = {
    "metrics": f"{METRICS}/pelsvae.json",
    "table3": f"{PELSVAE_DIR}/table3_regression_rmse.parquet",
    "rrlyrae_sequence": f"{PELSVAE_DIR}/rrlyrae_teff_sequence.parquet",
}
PELSVAE_FIGURES = {
    "loss": f"{FIGURES}/pelsvae/fig4_validation_loss.png",
    "recon_cvae": f"{FIGURES}/pelsvae/fig5_reconstructions_cvae.png",
    "latents": f"{FIGURES}/pelsvae/fig6_latent_pairs.png",
    "recon_cvae_p": f"{FIGURES}/pelsvae/fig7_reconstructions_cvae_p.png",
    "rrlyrae": f"{FIGURES}/pelsvae/fig8_rrlyrae_teff.png",
}
GENERATED_LIGHTCURVES = f"{RESULTS}/catalogs/generated_lightcurves.parquet"


DESI = config["desi"]
DESI_DIR = f"{RESULTS}/sources/desi"
DESI_SURVEYS = ["bgs", "mws"]
# Redrock class of each survey's sample (paper 003 Sec. 2).
DESI_SPECTYPE = {"bgs": "GALAXY", "mws": "STAR"}
DESI_SPECTRA = f"{RESULTS}/desi/{{survey}}_spectra.parquet"
DESI_SIMULATED = DESI["kind"] == "simulated"
# desi.kind edr: one coadd + Redrock pair per EDR survey/programme/HEALPix directory, listed by a checkpoint.
DESI_EDR_INDEX = f"{DESI_DIR}/edr/index.json"
DESI_EDR_FILE = f"{DESI_DIR}/edr/{{kind}}-{{edr_survey}}-{{program}}-{{healpix}}.fits"


def desi_input_files(wildcards):
    """The (coadd, redrock) files prepare_desi_spectra reads: the simulated pair of the survey, or every
    EDR pixel of the index (BGS and MWS targets share the bright-programme files)."""
    if DESI_SIMULATED:
        return {
            "coadd": [f"{DESI_DIR}/coadd-sim-{wildcards.survey}.fits"],
            "redrock": [f"{DESI_DIR}/redrock-sim-{wildcards.survey}.fits"],
        }
    with open(checkpoints.desi_edr_index.get().output[0]) as fh:
        pixels = json.load(fh)["pixels"]
    return {
        kind: [
            DESI_EDR_FILE.format(
                kind=kind,
                edr_survey=p["survey"],
                program=p["program"],
                healpix=p["healpix"],
            )
            for p in pixels
        ]
        for kind in ("coadd", "redrock")
    }


BGS = config["bgs"]
BGS_MODEL_DIR = f"{RESULTS}/models/bgs"
# The galaxy model trains on BGS, the star model on MWS (paper 003 Sec. 5).
BGS_AUTOENCODER = f"{BGS_MODEL_DIR}/{{survey}}_autoencoder.pt"
BGS_FLOW = f"{BGS_MODEL_DIR}/{{survey}}_flow.pt"
BGS_SPLIT = f"{BGS_MODEL_DIR}/{{survey}}_split.parquet"
BGS_CATALOG = f"{RESULTS}/catalogs/bgs_probability.parquet"


def seed_for(stage):
    """Seed of a stage, derived from the master seed (see latentsky.config.derive_seed)."""
    return derive_seed(config["seed"], stage)


def gaia_partitions(pattern):
    return expand(pattern, pixel=GAIA_PARTITIONS)


def raw_partitions_around(wildcards):
    """The fetched source_id range of a pixel and of its neighbours (see rule gaia_partition_from_archive)."""
    from latentsky.io.healpix import neighbours_in

    return expand(
        GAIA_RAW_PARTITION,
        pixel=neighbours_in(int(wildcards.pixel), GAIA_ORDER, GAIA_PARTITIONS),
    )


def hats_root(path):
    """The catalog directory of a file inside a HATS catalog (the part before /dataset/)."""
    return str(path).split("/dataset/")[0]


def hats_dir(pixel):
    """HATS' Dir= level of a pixel: 10000 · (pixel // 10000)."""
    return 10000 * (int(pixel) // 10000)


def nonempty_gaia_pixels():
    """Pixels holding at least one star (known once the partition index checkpoint has run)."""
    import json

    with open(checkpoints.gaia_partition_index.get().output[0]) as fh:
        index = json.load(fh)
    return [
        int(p)
        for p, n in sorted(index["rows"].items(), key=lambda kv: int(kv[0]))
        if n > 0
    ]


def distance_partitions(wildcards=None):
    return [
        DISTANCE_PARTITION.format(dir=hats_dir(p), pixel=p)
        for p in nonempty_gaia_pixels()
    ]


def distance_dust_input(wildcards=None):
    """The dust map, when the distance model reads one (distances.dust.kind = map)."""
    return {"dust": DUST_MAP} if DISTANCES["dust"]["kind"] == "map" else {}


def released_files(wildcards=None):
    """Every file the release lists (and `latentsky audit` can check)."""
    files = [
        *gaia_partitions(GAIA_PARTITION),
        GAIA_PARTITION_INDEX,
        f"{METRICS}/sources.json",
    ]
    if SIMULATED:
        files += [
            *gaia_partitions(GAIA_TRUTH_PARTITION),
            f"{FIGURES}/sources/gaia_cmd.png",
        ]
    if DUST_KIND == "simulated":
        files += [DUST_MAP, DUST_TRUTH_MAP, f"{FIGURES}/sources/dust_map.png"]
    files += [
        CMD_FLOW_MODEL,
        f"{CMD_FLOW_DIR}/training_history.parquet",
        f"{FIGURES}/distances/loss_curve.png",
        *distance_partitions(),
        *DISTANCE_CATALOG_METADATA,
        f"{METRICS}/distances.json",
        f"{FIGURES}/distances/cmd_raw_vs_posterior.png",
    ]
    if SIMULATED:
        files.append(f"{FIGURES}/distances/cluster_distances.png")
    files += [
        *OGLE_TABLES.values(),
        f"{CROSSMATCH_DIR}/matches.parquet",
        f"{CROSSMATCH_DIR}/cascade_counts.parquet",
        f"{METRICS}/crossmatch.json",
        *LIGHTCURVE_SETS.values(),
        f"{LIGHTCURVE_DIR}/object_status.parquet",
        f"{LIGHTCURVE_DIR}/class_counts.parquet",
        f"{METRICS}/lightcurves.json",
        f"{FIGURES}/lightcurves/fig1_panels.png",
        *expand(PELSVAE_MODEL, model=PELSVAE_MODELS),
        *expand(
            f"{PELSVAE_DIR}/{{model}}/training_history.parquet", model=PELSVAE_MODELS
        ),
        *expand(PELSVAE_REGRESSORS, model=PELSVAE_MODELS),
        *PELSVAE_OUTPUTS.values(),
        *PELSVAE_FIGURES.values(),
        GENERATED_LIGHTCURVES,
        *expand(DESI_SPECTRA, survey=DESI_SURVEYS),
        *([f"{DESI_DIR}/truth.parquet"] if DESI_SIMULATED else []),
        *expand(BGS_AUTOENCODER, survey=DESI_SURVEYS),
        *expand(BGS_FLOW, survey=DESI_SURVEYS),
        *expand(BGS_SPLIT, survey=DESI_SURVEYS),
        *expand(
            f"{BGS_MODEL_DIR}/{{survey}}_training_history.parquet", survey=DESI_SURVEYS
        ),
        BGS_CATALOG,
        f"{METRICS}/bgs.json",
        f"{FIGURES}/bgs/outlier_gallery.png",
    ]
    if PUBLISHED_XMATCH:
        files += PUBLISHED_OUTPUTS
    return files
