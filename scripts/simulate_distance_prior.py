"""Rule simulate_distance_prior: the simulated survey's distance-prior tables (tabulated and GGD)."""

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.distance_prior import ggd_prior_table, mock_space_density, tabulated_prior_table

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    mock = smk.params.mock
    ra, dec, d = mock_space_density(smk.params.simulated, smk.params.seed, mock["n_stars"])
    log.info("mock: %d draws of the stellar density, fits at HEALPix order %d", len(d), mock["fit_order"])
    record = job_record(smk, seed=smk.params.seed)
    write_parquet(tabulated_prior_table(ra, dec, d, mock["fit_order"]), smk.output.tabulated, record)
    ggd = ggd_prior_table(ra, dec, d, mock["fit_order"])
    write_parquet(ggd, smk.output.ggd, record)
    log.info("GGD fits: median L %.0f pc, α %.2f, β %.2f", *ggd[["GGDrlen", "GGDalpha", "GGDbeta"]].median())
