"""From an XP table to the model's inputs and to the latent catalog (paper 001; spec A1.6, A5).

The catalog has one row per input star — stars that cannot be encoded keep their row with ``has_latent``
false and the reader's flags saying why (a missing band, no G flux, a non-positive error…):

``source_id, sample, split, has_latent, flags, flag_names, g_flux_source, z_mu[6], z_logvar[6],
recon_reduced_chi2`` (mean r² over the 110 coefficients with ŝ), ``recon_reduced_chi2_no_scatter`` (ŝ = 0:
what the measurement errors alone allow), ``scatter[110]`` (ŝ in G-normalised units, ŝ_k · s_k),
``scatter_mean_std_units``, ``normalised_residual_max``, ``recon_full_cov_chi2_64`` (reduced χ² with ŝ and the
archive's BP/RP correlations over the first 32 + 32 coefficients, as the authors' 2024 notebooks; NaN when the
input carries no correlations), ``anomaly_score`` (= ``scatter_mean_std_units``, the mean ŝ) and
``anomaly_rank`` (1 = most anomalous), ``recon_chi2_rank`` (the same by ``recon_reduced_chi2``; spec A1.6
ranks both), and for labelled stars the Cannon beside it: ``cannon_reduced_chi2``,
``cannon_normalised_residual_max``. The latent is the posterior mean μ and its ln σ², not a random draw (the
authors' notebooks store a reparameterised sample, which no one can reproduce).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentsky.io.gaia_xp import FLAGS, XpTable, flag_names
from latentsky.training import outlier_ranks, split_targets
from latentsky.xp.cannon import CannonModel
from latentsky.xp.evaluation import full_covariance_chi2, normalised_residuals
from latentsky.xp.svae import ScatterVAE, XpNormalisation, encode_xp, fit_normalisation, standardise

__all__ = [
    "LABEL_COLUMNS",
    "NOT_ENCODABLE",
    "XpInputs",
    "model_inputs",
    "catalog_labels",
    "read_catalog_labels",
    "split_crossmatch",
    "training_normalisation",
    "xp_catalog",
    "full_covariance_chi2_of_file",
    "full_covariance_chi2_of_table",
    "partition_catalog",
]

#: Cannon label names → the APOGEE DR17 allStar columns the cross-match carries.
LABEL_COLUMNS = {"teff": "TEFF", "logg": "LOGG", "m_h": "M_H", "ebv": "SFD_EBV"}
#: Reader flags that leave a star without a latent (its data cannot be standardised); a missing band is
#: added unless ``missing_band: mask``.
NOT_ENCODABLE = ("missing_g_flux", "nonfinite_coefficient", "nonpositive_error", "missing_from_archive")


@dataclass
class XpInputs:
    """Standardised coefficients of a table: ``x``, ``sigma`` and a 0/1 ``weight`` (n, 110) and which rows
    can be encoded (``usable``)."""

    source_id: np.ndarray
    x: np.ndarray
    sigma: np.ndarray
    weight: np.ndarray
    usable: np.ndarray


def _flag_mask(flags: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    bits = 0
    for name in names:
        if name in FLAGS:
            bits |= int(FLAGS[name])
    return (np.asarray(flags, dtype=np.int64) & bits) != 0


def model_inputs(table: XpTable, norm: XpNormalisation, missing_band: str = "flag") -> XpInputs:
    """Standardise a table with a model's normalisation (paper Sec. 2.1). With ``missing_band="mask"`` a star
    missing BP or RP is still usable: its missing block is encoded at 0 (the training mean) and weighted 0."""
    blocking = NOT_ENCODABLE + (("missing_bp", "missing_rp") if missing_band == "flag" else ())
    g = np.where(np.asarray(table.g_flux) > 0, table.g_flux, np.nan)
    x, sigma = standardise(table.coefficients, table.errors, g, norm)
    weight = (np.isfinite(x) & np.isfinite(sigma) & (sigma > 0)).astype(np.float64)
    usable = ~_flag_mask(table.flags, blocking) & np.isfinite(g) & (weight.sum(axis=1) > 0)
    sigma = np.where(weight > 0, sigma, 1.0)
    x = np.where(weight > 0, x, 0.0)
    return XpInputs(np.asarray(table.source_id), x, sigma, weight, usable)


def split_crossmatch(table: XpTable, fractions, seed: int) -> np.ndarray:
    """train / val / test of every cross-match star (``xp.split``), the same for every sVAE preset and the
    Cannon; stable under reordering of the table (:func:`latentsky.training.split_targets`)."""
    return split_targets(np.asarray(table.source_id), fractions, seed)


def training_normalisation(table: XpTable, split: np.ndarray, missing_band: str = "flag") -> XpNormalisation:
    """Mean and standard deviation of c/F_G over the usable training stars (paper Sec. 2.1); the sVAE and the
    Cannon standardise with it, so their residuals are in the same units."""
    blocking = NOT_ENCODABLE + (("missing_bp", "missing_rp") if missing_band == "flag" else ())
    rows = (split == "train") & ~_flag_mask(table.flags, blocking) & (np.asarray(table.g_flux) > 0)
    if not rows.any():
        raise ValueError(f"{table.path}: no usable training star (every row is flagged or in val/test)")
    return fit_normalisation(table.coefficients[rows], np.asarray(table.g_flux)[rows])


def catalog_labels(
    frame: pd.DataFrame, names: list[str] | tuple[str, ...], where: str = "table"
) -> np.ndarray:
    """(n, L) labels from the cross-match's allStar columns (NaN where APOGEE has none)."""
    missing = [LABEL_COLUMNS[n] for n in names if LABEL_COLUMNS[n] not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: no label column(s) {missing}; the cross-match needs APOGEE DR17 allStar names"
        )
    return np.column_stack([pd.to_numeric(frame[LABEL_COLUMNS[n]], errors="coerce") for n in names])


def read_catalog_labels(path, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """:func:`catalog_labels` of a cross-match Parquet file, reading only the label columns."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    columns = [LABEL_COLUMNS[n] for n in names if LABEL_COLUMNS[n] in present]
    return catalog_labels(pd.read_parquet(path, columns=columns), names, str(path))


def xp_catalog(
    tables: Mapping[str, tuple[XpTable, pd.DataFrame | None]],
    model: ScatterVAE,
    norm: XpNormalisation,
    *,
    missing_band: str = "flag",
    split: Mapping[int, str] | None = None,
    cannon: CannonModel | None = None,
    full_cov_chi2: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The latent catalog of every star of ``tables`` (sample name → (XP table, label frame or None)); the
    Cannon columns are filled for stars with finite labels when ``cannon`` is given. ``full_cov_chi2``
    (sample → one value per row, :func:`full_covariance_chi2_of_file`) fills ``recon_full_cov_chi2_64``;
    without it, a table read with its correlations gets them computed here.
    Anomaly ranks are over all samples together."""
    parts = []
    # Rows without any usable coefficient give all-NaN residual rows: their summaries are NaN by design.
    warnings.filterwarnings("ignore", message="(Mean of empty slice|All-NaN slice)", category=RuntimeWarning)
    for sample, (table, labels) in tables.items():
        inputs = model_inputs(table, norm, missing_band)
        out = encode_xp(model, inputs.x)
        r = np.where(
            inputs.weight > 0, normalised_residuals(inputs.x, out.x_hat, inputs.sigma, out.s_hat), np.nan
        )
        r0 = np.where(inputs.weight > 0, (inputs.x - out.x_hat) / inputs.sigma, np.nan)
        ok = inputs.usable
        n = len(ok)

        def masked(values: np.ndarray, ok: np.ndarray = ok) -> np.ndarray:
            return np.where(ok, values, np.nan)

        frame = pd.DataFrame(
            {
                "source_id": inputs.source_id.astype(np.int64),
                "sample": sample,
                "split": [split.get(int(s), sample) for s in inputs.source_id] if split else sample,
                "has_latent": ok,
                "flags": np.asarray(table.flags, dtype=np.int64),
                "flag_names": [",".join(flag_names(int(f))) for f in table.flags],
                "g_flux_source": np.asarray(table.g_flux_source).astype(str),
                "z_mu": [m.astype(np.float32) if u else None for m, u in zip(out.mu, ok, strict=True)],
                "z_logvar": [
                    m.astype(np.float32) if u else None for m, u in zip(out.log_var, ok, strict=True)
                ],
                "recon_reduced_chi2": masked(np.nanmean(r**2, axis=1) if n else np.zeros(0)),
                "recon_reduced_chi2_no_scatter": masked(np.nanmean(r0**2, axis=1) if n else np.zeros(0)),
                "scatter": [
                    (s * norm.std).astype(np.float32) if u else None
                    for s, u in zip(out.s_hat, ok, strict=True)
                ],
                "scatter_mean_std_units": masked(out.s_hat.mean(axis=1) if n else np.zeros(0)),
                "normalised_residual_max": masked(np.nanmax(np.abs(r), axis=1) if n else np.zeros(0)),
            }
        )
        full = (full_cov_chi2 or {}).get(sample)
        if full is None and table.correlations is not None:
            full = full_covariance_chi2_of_table(table, model, norm, missing_band)
        if full is not None and len(full) != n:
            raise ValueError(f"{table.path}: {len(full)} full-covariance χ² values for {n} rows")
        frame["recon_full_cov_chi2_64"] = (
            masked(np.asarray(full, dtype=float)) if full is not None else np.nan
        )
        frame["cannon_reduced_chi2"] = np.nan
        frame["cannon_normalised_residual_max"] = np.nan
        if cannon is not None and labels is not None:
            lab = catalog_labels(labels, cannon.label_names)
            has = ok & np.all(np.isfinite(lab), axis=1)
            if has.any():
                rc = cannon.normalised_residuals(lab[has], inputs.x[has], inputs.sigma[has])
                rc = np.where(inputs.weight[has] > 0, rc, np.nan)
                frame.loc[has, "cannon_reduced_chi2"] = np.nanmean(rc**2, axis=1)
                frame.loc[has, "cannon_normalised_residual_max"] = np.nanmax(np.abs(rc), axis=1)
        parts.append(frame)
    catalog = pd.concat(parts, ignore_index=True)
    # The anomaly score is the mean ŝ (spec A1.6 ranks it and the χ² with ŝ): an anomalous spectrum is what the
    # scatter decoder widens ŝ for, which shrinks its own normalised residuals, so the χ² with ŝ recalled 2 % of
    # the demo's injected anomalies in its top 5 % (chance: 5 %), the mean ŝ 36 % (code preset) to 64 % (paper
    # preset, 200,000 stars) — but only 6 % for the code preset at 200,000 stars (docs/xp.md).
    catalog["anomaly_score"] = catalog["scatter_mean_std_units"]
    has_latent = catalog["has_latent"].to_numpy()
    catalog["anomaly_rank"] = outlier_ranks(-catalog["anomaly_score"].to_numpy(dtype=float), has_latent)
    catalog["recon_chi2_rank"] = outlier_ranks(
        -catalog["recon_reduced_chi2"].to_numpy(dtype=float), has_latent
    )
    return catalog


def full_covariance_chi2_of_file(
    path: str,
    model: ScatterVAE,
    norm: XpNormalisation,
    missing_band: str = "flag",
    batch_rows: int = 4096,
) -> np.ndarray | None:
    """``recon_full_cov_chi2_64`` of every row of an XP Parquet file, in file order, reading the correlation
    columns a batch of rows at a time (a star's two 55×55 matrices are 48 kB in float64: a whole file's would
    not fit in a catalog job's memory at archive scale). None when the file has no correlation columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latentsky.io.gaia_xp import read_xp_continuous

    parquet = pq.ParquetFile(path)
    if not {"bp_coefficient_correlations", "rp_coefficient_correlations"} <= set(parquet.schema_arrow.names):
        return None
    values = [
        full_covariance_chi2_of_table(
            read_xp_continuous(pa.Table.from_batches([batch]), with_correlations=True),
            model,
            norm,
            missing_band,
        )
        for batch in parquet.iter_batches(batch_size=batch_rows)
    ]
    return np.concatenate(values) if values else np.zeros(0)


def full_covariance_chi2_of_table(
    table: XpTable, model: ScatterVAE, norm: XpNormalisation, missing_band: str = "flag"
) -> np.ndarray:
    """``recon_full_cov_chi2_64`` of every row of a table read with its correlations (NaN where a row has
    none, or where it cannot be encoded)."""
    if table.correlations is None:
        raise ValueError(
            f"{table.path}: read without correlations (read_xp_continuous(..., with_correlations=True))"
        )
    inputs = model_inputs(table, norm, missing_band)
    out = encode_xp(model, inputs.x)
    residual = np.where(inputs.weight > 0, inputs.x - out.x_hat, np.nan)
    chi2 = full_covariance_chi2(residual, inputs.sigma, out.s_hat, table.correlations)["full"]
    return np.where(inputs.usable, chi2, np.nan)


#: Columns of the whole-sky catalog that mean nothing in a HATS partition: the sample and split of the training
#: stars, the Cannon (no labels), and ranks (they would be ranks within one pixel; sort by ``anomaly_score``).
_NOT_IN_PARTITIONS = (
    "sample",
    "split",
    "cannon_reduced_chi2",
    "cannon_normalised_residual_max",
    "anomaly_rank",
    "recon_chi2_rank",
)


def partition_catalog(
    path: str, model: ScatterVAE, norm: XpNormalisation, missing_band: str = "flag"
) -> pd.DataFrame:
    """The latent catalog of one HEALPix partition's XP Parquet file, with its ``ra``/``dec`` (degrees, ICRS;
    the XP tables have no positions, so the partition must carry them joined from ``gaia_source``). One row
    per input star; the columns of :func:`xp_catalog` without those in :data:`_NOT_IN_PARTITIONS`.

    Raises ``ValueError`` naming the file when it is not Parquet, has no ``ra``/``dec``, or has a star without
    a finite position (HATS places every row by its position)."""
    import pyarrow.parquet as pq

    from latentsky.io.gaia_xp import read_xp_continuous

    if not str(path).lower().endswith((".parquet", ".pq")):
        raise ValueError(
            f"{path}: an xp.partitions table must be Parquet (the project's XP layout plus ra, dec)"
        )
    names = {n.lower(): n for n in pq.read_schema(path).names}
    missing = [c for c in ("ra", "dec") if c not in names]
    if missing:
        raise ValueError(
            f"{path}: no column(s) {', '.join(missing)}; join ra and dec from gaia_source by source_id"
        )
    positions = pq.read_table(path, columns=[names["ra"], names["dec"]]).to_pandas()
    ra, dec = (positions[names[c]].to_numpy(dtype=float) for c in ("ra", "dec"))
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    if bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} star(s) without a finite ra/dec; HATS places rows by position"
        )
    table = read_xp_continuous(path)
    full = full_covariance_chi2_of_file(path, model, norm, missing_band)
    catalog = xp_catalog(
        {"partition": (table, None)},
        model,
        norm,
        missing_band=missing_band,
        full_cov_chi2=None if full is None else {"partition": full},
    ).drop(columns=list(_NOT_IN_PARTITIONS))
    catalog.insert(1, "ra", ra)
    catalog.insert(2, "dec", dec)
    return catalog
