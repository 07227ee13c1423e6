"""Rule fetch_gaia_u0_table: ESA's DR2 RUWE normalisation tables (DR2_RUWE_V1), checked and extracted."""

from pathlib import Path

from latentsky.fetch.gaia_u0 import fetch_dr2_u0_tables
from latentsky.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    out_dir = Path(smk.output[0]).parent
    written = fetch_dr2_u0_tables(out_dir, smk.params.url)
    expected = sorted(Path(p) for p in smk.output)
    if sorted(written.values()) != expected:
        raise RuntimeError(f"the fetcher wrote {sorted(written.values())}, the rule declares {expected}")
    log.info("u0 tables from %s: %s", smk.params.url, ", ".join(map(str, expected)))
