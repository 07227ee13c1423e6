"""OGLE-III variable stars (Martínez-Palomera et al.; paper 000 Sec. 2 and Appendix A): the cross-match with
Gaia validated by proper motion (:mod:`~latentsky.variables.crossmatch`, the cascade of Table 4), light-curve
cleaning, folding, undersampling, augmentation and splits (:mod:`~latentsky.variables.lightcurves`) and their
figures (:mod:`~latentsky.variables.figures`).
"""
