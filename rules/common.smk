# Shared helpers (result directories, seeds, the HATS layout) and the registry of released files; no jobs.
from latentsky.config import derive_seed
from latentsky.jobs import row_slices

RESULTS = "results"
LOGS = f"{RESULTS}/logs"
METRICS = f"{RESULTS}/metrics"
FIGURES = f"{RESULTS}/figures"

# The files each stage releases, filled in by the stage files and listed by rules/release.smk:
#   RELEASED["<stage>"] = a function (wildcards=None) → list of paths. A function, because checkpoints
# decide some of the lists (the distance partitions: gaia_partition_index).
RELEASED = {}

# Helpers used by several stages live here. A stage's own helpers and input functions live in its file,
# as lambdas: `snakemake --lint` objects to functions defined with def in a file with rules.


def seed_for(stage):
    """Seed of a stage, derived from the master seed (see latentsky.config.derive_seed)."""
    return derive_seed(config["seed"], stage)


def hats_root(path):
    """The catalog directory of a file inside a HATS catalog (the part before /dataset/)."""
    return str(path).split("/dataset/")[0]


def hats_dir(pixel):
    """HATS' Dir= level of a pixel: 10000 · (pixel // 10000)."""
    return 10000 * (int(pixel) // 10000)
