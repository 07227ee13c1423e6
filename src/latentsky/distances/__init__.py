"""Distance posteriors for Gaia stars from a normalizing flow on the dereddened colour–magnitude diagram
(Cranmer et al.; paper 004).

* :mod:`~latentsky.distances.flow` — the CMD flow (MAF: MADE → BatchNorm → Reverse blocks);
* :mod:`~latentsky.distances.training` — training with parallax samples and iterated dust;
* :mod:`~latentsky.distances.posterior` — the catalog's posterior entry point: scheme, prior, flags;
* :mod:`~latentsky.distances.grid` — the exact posterior on a per-star log-distance grid (default);
* :mod:`~latentsky.distances.importance` — the paper's importance sampling with iterated dust;
* :mod:`~latentsky.distances.prior` — distance priors (flat, EDSD, Bailer-Jones 2021 GGD per HEALPix);
* :mod:`~latentsky.distances.stars` — the model's inputs, flags and CMD point at a distance;
* :mod:`~latentsky.distances.inputs` — Gaia table → stars, training cuts, catalog rows;
* :mod:`~latentsky.distances.pipeline` — train and catalog entry points shared by rules, CLI and benchmark;
* :mod:`~latentsky.distances.dust` — dust sources (Bayestar map, constant, none);
* :mod:`~latentsky.distances.metrics` — Table 1 / Table 2 figures of merit against truth and baselines;
* :mod:`~latentsky.distances.survey` — summaries of a Gaia-like source table;
* :mod:`~latentsky.distances.figures` — the survey and catalog figures.
"""
