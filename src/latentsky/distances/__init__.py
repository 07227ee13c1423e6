"""Distance posteriors for Gaia stars from a normalizing flow on the dereddened colour–magnitude diagram
(Cranmer et al.; paper 004).

* :mod:`~latentsky.distances.flow` — the CMD flow (MAF: MADE → BatchNorm → Reverse blocks);
* :mod:`~latentsky.distances.training` — training with parallax samples and iterated dust;
* :mod:`~latentsky.distances.posterior` — the posterior on a distance grid, its summaries and flags;
* :mod:`~latentsky.distances.inputs` — Gaia table → stars, training cuts, catalog rows;
* :mod:`~latentsky.distances.pipeline` — train and catalog entry points shared by rules, CLI and benchmark;
* :mod:`~latentsky.distances.dust` — dust sources (Bayestar map, constant, none);
* :mod:`~latentsky.distances.metrics` — Table 1 / Table 2 figures of merit against truth and baselines;
* :mod:`~latentsky.distances.survey` — summaries of a Gaia-like source table;
* :mod:`~latentsky.distances.figures` — the survey and catalog figures.
"""
