"""Rule distance_catalog_partition: distance posteriors for every star of one HEALPix partition."""

from tqdm import tqdm

from latentsky.distances.inputs import dust_source
from latentsky.distances.pipeline import load_cmd_flow, posterior_catalog
from latentsky.io.gaia import read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.io.hats import write_partition
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    pixel = int(smk.wildcards.pixel)
    if int(smk.wildcards.dir) != 10000 * (pixel // 10000):
        raise ValueError(
            f"{smk.output[0]}: Dir={smk.wildcards.dir} does not match Npix={pixel} (HATS layout)"
        )
    gaia = canonical_gaia(read_partitions([smk.input.source]), smk.input.source)
    if len(gaia) == 0:
        raise ValueError(
            f"{smk.input.source}: partition {pixel} holds no stars; there is no catalog to write"
        )
    device = resolve_device(cfg["device"])
    flow = load_cmd_flow(smk.input.model, device)
    dust = dust_source(cfg["dust"], smk.input.get("dust"))
    with tqdm(total=len(gaia), desc=f"Npix={pixel}", mininterval=5) as bar:
        catalog = posterior_catalog(
            gaia, flow, dust, cfg, smk.params.seed, device, bar.update, smk.input.get("prior_table")
        )
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    written = write_partition(catalog, smk.params.catalog_dir, smk.params.partition_order, pixel, record)
    if str(written) != smk.output[0]:
        raise RuntimeError(f"HATS placed partition {pixel} at {written}, the rule declares {smk.output[0]}")
    n_post = int(catalog["has_posterior"].sum())
    log.info("partition %d: %d stars, %d with a posterior", pixel, len(catalog), n_post)
