"""Cycle-StarNet (O'Briain et al. 2021, paper 002): domain adaptation from synthetic to observed spectra."""
