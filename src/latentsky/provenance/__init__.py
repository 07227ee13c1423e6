"""Where a file came from: the provenance record every output carries, the writers that embed it, the
release manifest, the audit of a released file's lineage and the comparison of two runs.

* :mod:`~latentsky.provenance.record` — build the record (rule, wildcards, params, config hash, sha256 of
  every input, code version, packages, seed, device);
* :mod:`~latentsky.provenance.files` — atomic writers and readers of Parquet, JSON, FITS, HDF5, PNG and
  model checkpoints with the record embedded;
* :mod:`~latentsky.provenance.manifest` — the release manifest (sha256, size, rows of every released file);
* :mod:`~latentsky.provenance.audit` — ``latentsky audit``: a released file's lineage, checked;
* :mod:`~latentsky.provenance.compare` — ``latentsky compare-runs``: same data in two results trees?
"""
