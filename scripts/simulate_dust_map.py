"""Rule simulate_dust_map: the simulated 3-D dust map, in the Bayestar19 HDF5 layout, and its truth."""

import h5py
from latentsky.simulate.dust import SimulatedDustMap, write_bayestar_h5

from latentsky.jobs import job_logging, job_record
from latentsky.outputs import atomic_output, set_hdf5_provenance

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    seed = smk.params.seed
    dust = SimulatedDustMap.from_config(smk.params.simulated, seed=seed)
    record = job_record(smk, seed=seed)
    for which, path in (("observed", smk.output.observed), ("truth", smk.output.truth)):
        with atomic_output(path) as tmp:
            write_bayestar_h5(tmp, dust, which=which)
            with h5py.File(tmp, "a") as fh:
                set_hdf5_provenance(fh, {**record, "extra": {"map": which}})
        log.info("wrote %s map to %s", which, path)
