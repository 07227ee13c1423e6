"""The Payne spectral emulator (Ting et al. 2019) as used by Cycle-StarNet (paper 002): an MLP from stellar
labels to a normalised spectrum, its trainer, and readers for The Payne's ``.npz`` and Cycle-StarNet's
``PAYNE.pth.tar`` networks (module ``emulator``)."""

from latentsky.payne.emulator import (
    LEAKY_SLOPE,
    LOSS_SCALE,
    PayneEmulator,
    PayneSettings,
    emulator_error,
    load_cycle_sn_payne,
    load_payne,
    load_payne_npz,
    save_payne,
    train_payne,
)

__all__ = [
    "LEAKY_SLOPE",
    "LOSS_SCALE",
    "PayneEmulator",
    "PayneSettings",
    "emulator_error",
    "load_cycle_sn_payne",
    "load_payne",
    "load_payne_npz",
    "save_payne",
    "train_payne",
]
