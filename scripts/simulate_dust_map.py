"""Rule simulate_dust_map: the simulated 3-D dust map, in the Bayestar19 HDF5 layout, and its truth."""

from latentsky.jobs import job_logging, job_record
from latentsky.simulate.dust import SimulatedDustMap, write_bayestar_h5

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    seed = smk.params.seed
    dust = SimulatedDustMap.from_config(smk.params.simulated, seed=seed)
    record = job_record(smk, seed=seed)
    for which, path in (("observed", smk.output.observed), ("truth", smk.output.truth)):
        write_bayestar_h5(path, dust, which=which, provenance={**record, "extra": {"map": which}})
        log.info("wrote the %s map (nside %d) to %s", which, dust.nside, path)
