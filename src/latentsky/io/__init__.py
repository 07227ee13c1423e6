"""Reading survey formats and sky layouts, with no method knowledge: Gaia archive tables in every format
the archive hands out (:mod:`~latentsky.io.gaia`) and their canonical columns
(:mod:`~latentsky.io.gaia_columns`), OGLE-III files (:mod:`~latentsky.io.ogle`), DESI coadds and Redrock fits
(:mod:`~latentsky.io.desi`), HATS catalogs (:mod:`~latentsky.io.hats`), HEALPix and Gaia source_ids
(:mod:`~latentsky.io.healpix`), list-column spectra (:mod:`~latentsky.io.spectra`) and report tables
(:mod:`~latentsky.io.markdown`). Bad input raises an error naming the file, the column and what was expected.
"""
