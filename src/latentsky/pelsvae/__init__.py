"""PELS-VAE, the conditional VAE of light curves (Martínez-Palomera et al.; paper 000 Secs. 3–4).

config ← data ← model ← training; regression (physics → latents, Table 3), generation (Sec. 4.3, any
cadence), evaluation (reconstruction and Table 3 against baselines) and figures build on them. It reads the
light curves :mod:`latentsky.variables` prepares — the one import between method packages.
"""
