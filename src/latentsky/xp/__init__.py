"""Gaia XP spectra with a scatter VAE (paper 001, Laroche & Speagle 2023) and a quadratic Cannon baseline.

Modules: ``basis`` (Gaia DR3 BP/RP basis through GaiaXPy), ``svae`` (the scatter VAE: model, loss, training),
``cannon`` (The Cannon, written by hand because no packaged Cannon runs on numpy 2), ``catalog`` (encoding a
table into the latent catalog), ``evaluation`` (the paper's figures of merit) and ``figures``.
"""
