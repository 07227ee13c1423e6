"""Rule simulate_gaia_survey: the simulated Gaia DR2-like survey, one Parquet per HEALPix partition."""

from latentsky.io.healpix import source_id_to_healpix
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.dust import read_simulated_dust_map
from latentsky.simulate.gaia import simulate_gaia_survey

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    seed = smk.params.seed
    order = smk.params.partition_order
    dust = read_simulated_dust_map(smk.input.truth_dust, smk.input.observed_dust)
    observed, truth = simulate_gaia_survey(smk.params.simulated, dust, seed=seed)
    log.info("simulated %d stars", len(observed))
    record = job_record(smk, seed=seed)
    pixel_of_star = source_id_to_healpix(observed["source_id"].to_numpy(), order)
    # Output lists are in partition order (rules/sources.smk expands pixel = 0 … npix−1).
    for pixel, (obs_path, truth_path) in enumerate(zip(smk.output.observed, smk.output.truth, strict=True)):
        rows = pixel_of_star == pixel
        extra = {"healpix_order": order, "healpix_pixel": pixel}
        write_parquet(observed[rows], obs_path, {**record, "extra": extra})
        write_parquet(truth[rows], truth_path, {**record, "extra": extra})
        log.info("partition %d: %d stars", pixel, int(rows.sum()))
