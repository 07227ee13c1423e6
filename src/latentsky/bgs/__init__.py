"""The DESI Bright Galaxy Survey outlier-probability catalog (Liang et al.; paper 003): SPENDER autoencoders
(:mod:`~latentsky.bgs.autoencoder`), flows on their latents (:mod:`~latentsky.bgs.flow`), the catalog rows
(:mod:`~latentsky.bgs.catalog`), the figures of merit beside a PCA baseline (:mod:`~latentsky.bgs.metrics`)
and the outlier gallery (:mod:`~latentsky.bgs.figures`).
"""
