"""Readers for OGLE files: light curves, ident/period tables and the OGLE-III × Gaia DR2 cross-match.

Three formats, each read into a :class:`pandas.DataFrame` with fixed column names and units. Bad input
raises :class:`OgleFormatError` (a ``ValueError``) naming the file, the line or column and what was
expected; nothing is dropped silently. The OGLE-III Catalog of Variable Stars (OIII-CVS) and the OGLE-IV
Collection of Variable Stars (OCVS) are read by the same functions.

Light curves (:func:`read_ogle_lightcurve`)
    The photometry files (``OGLE-LMC-CEP-0002.dat``): no header, three whitespace-separated columns
    ``HJD-2450000  I  err``, magnitudes and errors in mag printed to 0.001 mag. Output columns ``time``
    (HJD − 2450000, days), ``mag`` (I, mag), ``err`` (mag), in file order. A file whose times are full HJD
    (> 2,400,000) is shifted by 2,450,000 (see the function).

Ident tables (:func:`read_ogle_ident`, :func:`read_ogle_period_table`)
    Every class directory has an ``ident.dat``, in one of two layouts. OGLE-III::

        OGLE-LMC-CEP-0002  LMC175.6  11404  F   04:36:03.14 -70:30:53.2  OGLE05...  05...  ...
        ^ID                ^field    ^star  ^subtype (some classes)  ^RA  ^Dec  ^cross-identifications

    i.e. ID, OGLE-III field, star number in the field, for most classes one or more subtype tokens (``F``,
    ``1O``, ``F/1O``, ``RRab``, ``Mira``, ``BLHer``...), RA as ``hh:mm:ss.ss`` and Dec as ``±dd:mm:ss.s``
    (J2000), then optional cross-identifications (OGLE-II, MACHO, GCVS, ...) that are blank when absent, so
    the number of tokens varies from line to line. OGLE-IV (the bulge RR Lyrae README gives the fixed-width
    columns; ``tests/data/ogle4_ident`` holds real lines of five classes)::

        OGLE-BLG-DSCT-00001  singlemode  17:12:55.10 -29:48:06.5  BLG617.16.97164  BLG363.8.78880
        ^ID                  ^subtype    ^RA         ^Dec         ^OGLE-IV id      ^OGLE-III id  [OGLE-II] [other]

    i.e. ID, the subtype (absent for some classes), RA, Dec, then four columns that are blank when absent: the
    OGLE-IV id ``FIELD.CCD.STAR`` (``BLG617.16.97164``: field BLG617, CCD 16, star 97164), the OGLE-III id
    (``BLG363.8.78880``), the OGLE-II id and another designation (from VSX, possibly several words). One
    class (``blg/hb``) writes RA and Dec with blanks instead of colons (``17 26 26.55 -29  3 18.8``).
    The reader therefore locates RA and Dec by their sexagesimal pattern rather than by position, and tells
    the layouts apart by what precedes RA (an OGLE-III field and an integer star number, or not).

    Periods live in separate per-mode tables (``cepF.dat``, ``cep1O.dat``, ``RRab.dat``, ...), in OGLE-III
    and in the OGLE-IV RR Lyrae README with these leading columns (other OGLE-IV classes are not checked)::

        OGLE-LMC-CEP-0002  15.530  16.265  3.1181189  0.0000057  2171.37258  0.443  0.478  4.480 ...
        ^ID                ^<I>    ^<V>    ^P [d]     ^sigma_P   ^T0 (HJD-2450000)  ^I amplitude ...

    where a missing value is written ``-`` or ``-99.99``. :func:`read_ogle_period_table` reads ID,
    ``i_mag``, ``v_mag``, ``period`` (d), ``period_err`` (d), ``t0`` (HJD − 2450000) and ``i_amp``
    (mag); :func:`read_ogle_ident` merges any given period tables onto the ident rows.

Cross-match (:func:`read_ogle_gaia_xmatch`)
    The PELS-VAE authors' OGLE-III × Gaia DR2 CSV tables (paper 000, Sec. 2.3 and Appendix A); see that
    function for the column mapping and the two quirks of these files (``angDist`` in arcsec, and
    ``abs_Gmag`` = ``abs_Imag`` in two of them).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import Angle

__all__ = [
    "OgleFormatError",
    "parse_ogle_id",
    "read_ogle_lightcurve",
    "read_light_curves",
    "merge_light_curve_files",
    "read_ogle_period_table",
    "read_ogle_ident",
    "read_ogle_gaia_xmatch",
    "read_training_meta_ids",
    "XMATCH_COLUMNS",
]


class OgleFormatError(ValueError):
    """An OGLE file does not have the expected layout; the message names the file and line or column."""


#: ``OGLE-<target>-<class>-<number>``; target LMC, SMC, BLG (bulge) or GD (Galactic disk).
#: Columns of the OGLE object catalog the workflow reads, whatever made it (the archive fetcher,
#: :mod:`latentsky.fetch.ogle3`, or the simulation, :mod:`latentsky.simulate.ogle`): what the OGLE-III catalog
#: gives per object. Physical parameters are not among them; they come from the Gaia match.
OBJECT_COLUMNS: tuple[str, ...] = (
    "ogle_id",
    "field",
    "ra",
    "dec",
    "var_class",
    "subtype",
    "period",
    "i_mag",
    "v_i",
    "n_epochs",
)

_OGLE_ID = re.compile(r"^OGLE-(?P<target>[A-Z]+)-(?P<var_class>[A-Z0-9]+)-(?P<number>\d+)$")
_RA = re.compile(r"^\d{1,2}:\d{2}:\d{2}(\.\d*)?$")
_DEC = re.compile(r"^[+-]?\d{1,2}:\d{2}:\d{2}(\.\d*)?$")
#: RA and Dec written as six blank-separated tokens (OGLE-IV ``blg/hb``: ``17 26 26.55 -29  3 18.8``). The Dec
#: sign and the decimal point of both seconds are required, so that no run of integers (star numbers, counts)
#: passes for a position.
_RA_DEC_BLANKS = tuple(
    re.compile(p)
    for p in (
        r"^\d{1,2}$",
        r"^\d{1,2}$",
        r"^\d{1,2}\.\d+$",
        r"^[+-]\d{1,2}$",
        r"^\d{1,2}$",
        r"^\d{1,2}\.\d+$",
    )
)
#: OGLE-III field (``LMC175.6``, ``BLG184.6``): the token after the ID in the OGLE-III layout.
_OGLE3_FIELD = re.compile(r"^[A-Z]+\d+\.\d+$")
#: OGLE-IV database id ``FIELD.CCD.STAR``. OGLE-IV writes the CCD of its 32-chip mosaic with two digits
#: (``BLG617.16``, ``BLG611.04``, ``GD1376.19``), OGLE-III the CCD of its 8-chip mosaic with one
#: (``BLG363.8.78880``): so an OGLE-III id can never be taken for the OGLE-IV one.
_OGLE4_ID = re.compile(r"^(?P<field>[A-Z]+\d+\.\d{2})\.(?P<star>\d+)$")
#: Width of the OGLE-IV id column (OGLE's README: bytes 54-69, A16). A token that follows Dec after at most this
#: many blanks is in that column (real files: 1 or 2); when the column is blank the next id follows after more
#: (real files: 18 or 19).
_OGLE4_ID_WIDTH = 16
_TOKEN = re.compile(r"\S+")
#: A plain number: never a subtype.
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
#: The light curves' times are HJD minus this (d).
HJD_OFFSET = 2_450_000.0
#: A light-curve time above this is a full HJD (JD 2,400,000 is 1858; HJD − 2450000 of any CCD era is < 10⁵).
FULL_HJD_MIN = 2_400_000.0
#: Missing-value markers in the OGLE-III ASCII tables.
_MISSING = {"-", "-99.99", "-99.990", "99.999", "NaN", "nan"}


def parse_ogle_id(ogle_id: str) -> tuple[str, str, int]:
    """Split an OGLE-III or OGLE-IV identifier into (target, class, number).

    Parameters
    ----------
    ogle_id : str
        For example ``"OGLE-LMC-CEP-0002"``, ``"OGLE-BLG-RRLYR-02924"`` (OGLE-III) or
        ``"OGLE-BLG-ECL-253512"`` (OGLE-IV, six digits).

    Returns
    -------
    tuple of (str, str, int)
        Target field group (``LMC``, ``SMC``, ``BLG``, ``GD``), variability class (``CEP``, ``RRLYR``,
        ``T2CEP``, ...) and the running number.
    """
    match = _OGLE_ID.match(str(ogle_id).strip())
    if match is None:
        raise OgleFormatError(
            f"{ogle_id!r} is not an OGLE identifier of the form OGLE-<target>-<class>-<number>"
        )
    return match["target"], match["var_class"], int(match["number"])


def _float_or_nan(token: str) -> float:
    return math.nan if token in _MISSING else float(token)


def read_ogle_lightcurve(path: str | os.PathLike) -> pd.DataFrame:
    """Read an OGLE-III or OGLE-IV I-band light-curve file.

    Parameters
    ----------
    path : path-like
        A headerless file with three whitespace-separated columns per line: time (days), I (mag), I error
        (mag). Blank lines and ``#`` comments are ignored. The time is HJD − 2450000 in the OGLE-III files;
        a file whose times are all above :data:`FULL_HJD_MIN` is taken to give full HJD and is shifted by
        :data:`HJD_OFFSET`. (Whether any OGLE-IV directory writes full HJD is not verified here: other
        public readers of the OGLE collections test for it, so this reader does too rather than fold such a
        file with times 2.45 million days off.)

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (HJD − 2450000, d, whichever the file gives), ``mag`` (I, mag), ``err`` (mag),
        float64, in file order (the order is kept, not sorted, so that a file out of time order stays
        visible to the caller).

    Raises
    ------
    OgleFormatError
        A line with other than 3 columns, a non-numeric or non-finite value, an error that is NaN or
        not positive (an error ≤ 0 would give infinite weight in the error-weighted fits downstream), or a
        file that mixes full HJD with HJD − 2450000.
    """
    path = Path(path)
    rows: list[tuple[float, float, float]] = []
    linenos: list[int] = []
    with open(path, encoding="ascii", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            tokens = text.split()
            if len(tokens) != 3:
                raise OgleFormatError(
                    f"{path}, line {lineno}: expected 3 columns (HJD-2450000, I, err), found {len(tokens)}: {text!r}"
                )
            try:
                t, m, e = (float(x) for x in tokens)
            except ValueError as exc:
                raise OgleFormatError(f"{path}, line {lineno}: non-numeric value in {text!r}") from exc
            if not (math.isfinite(t) and math.isfinite(m)):
                raise OgleFormatError(
                    f"{path}, line {lineno}: time and magnitude must be finite, got {text!r}"
                )
            if not (math.isfinite(e) and e > 0):
                raise OgleFormatError(
                    f"{path}, line {lineno}: error (column 3) must be finite and > 0 mag, got {e}"
                )
            rows.append((t, m, e))
            linenos.append(lineno)
    if not rows:
        raise OgleFormatError(f"{path}: no photometry lines found")
    data = np.array(rows, dtype=np.float64)
    full = data[:, 0] > FULL_HJD_MIN
    if full.any():
        if not full.all():
            first = linenos[int(np.argmin(full if full[0] else ~full))]
            raise OgleFormatError(
                f"{path}, line {first}: mixes full HJD (> {FULL_HJD_MIN:.0f}) with HJD-2450000 times"
            )
        # Full HJD (≈ 2.45e6, 1e-5 d printed) in float64 keeps ~5e-10 d; the shift itself is exact.
        data[:, 0] -= HJD_OFFSET
    return pd.DataFrame(data, columns=["time", "mag", "err"])


def read_light_curves(path: str | os.PathLike, ogle_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The long light-curve table (``ogle_id``, ``time``, ``mag``, ``err``) of a Parquet file, only the rows of
    ``ogle_ids`` when given: pyarrow applies the filter row group by row group, so a catalog of 10⁸ epochs
    (OGLE-III bulge LPVs, mostly semi-regulars the stage drops) never sits in memory whole."""
    import pyarrow.parquet as pq

    columns = ["ogle_id", "time", "mag", "err"]
    ids = None if ogle_ids is None else sorted(set(map(str, ogle_ids)))
    try:
        if ids is None:
            table = pq.read_table(path, columns=columns)
        elif not ids:
            table = pq.ParquetFile(path).schema_arrow.empty_table().select(columns)
        else:
            table = pq.read_table(path, columns=columns, filters=[("ogle_id", "in", ids)])
    except (OSError, ValueError, KeyError) as err:  # truncated file, missing column
        raise OgleFormatError(f"{path}: not a light-curve table with columns {columns} ({err})") from err
    return table.to_pandas()


def read_ogle_period_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read an OGLE-III per-mode period table (``cepF.dat``, ``RRab.dat``, ...).

    Parameters
    ----------
    path : path-like
        Whitespace table: ID, <I> (mag), <V> (mag), P (d), σ_P (d), T0 (HJD − 2450000), I amplitude (mag),
        then Fourier parameters (ignored). ``-`` or ``-99.99`` mark missing values.

    Returns
    -------
    pandas.DataFrame
        Columns ``ogle_id``, ``i_mag``, ``v_mag``, ``period`` (d), ``period_err`` (d), ``t0``
        (HJD − 2450000, d), ``i_amp`` (mag).
    """
    path = Path(path)
    names = ["i_mag", "v_mag", "period", "period_err", "t0", "i_amp"]
    records = []
    with open(path, encoding="ascii", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            tokens = text.split()
            if len(tokens) < 4:
                raise OgleFormatError(
                    f"{path}, line {lineno}: expected at least ID, <I>, <V>, P; found {len(tokens)} columns"
                )
            parse_ogle_id(tokens[0])
            values = tokens[1:7] + ["-"] * max(0, 6 - len(tokens[1:7]))
            try:
                parsed = [_float_or_nan(v) for v in values]
            except ValueError as exc:
                raise OgleFormatError(f"{path}, line {lineno}: non-numeric value in {text!r}") from exc
            if not (parsed[2] > 0):
                raise OgleFormatError(
                    f"{path}, line {lineno}: period (column 4) must be > 0 d, got {values[2]}"
                )
            records.append([tokens[0], *parsed])
    return pd.DataFrame(records, columns=["ogle_id", *names])


#: ``survey`` values of :func:`read_ogle_ident`.
OGLE3, OGLE4 = "OGLE-III", "OGLE-IV"


def _find_coordinates(tokens: Sequence[str]) -> tuple[int, int, str, str] | None:
    """Where RA and Dec are in one ident line's tokens.

    Returns the index of RA's first token, the index just past Dec, and RA and Dec as colon-separated strings
    (``17:26:26.55``, ``-29:3:18.8``), or None when the line has neither form.
    """
    for i in range(1, len(tokens)):
        if _RA.match(tokens[i]) and i + 1 < len(tokens) and _DEC.match(tokens[i + 1]):
            return i, i + 2, tokens[i], tokens[i + 1]
        window = tokens[i : i + 6]
        if len(window) == 6 and all(p.match(t) for p, t in zip(_RA_DEC_BLANKS, window, strict=True)):
            return i, i + 6, ":".join(window[:3]), ":".join(window[3:])
    return None


def _parse_ident_line(text: str, where: str) -> dict[str, object]:
    """One ``ident.dat`` line (either layout, :func:`read_ogle_ident`) as a record; ``where`` is "file, line N"."""
    spans = list(_TOKEN.finditer(text))
    tokens = [m.group() for m in spans]
    found = _find_coordinates(tokens)
    if found is None:
        raise OgleFormatError(
            f"{where}: expected RA as hh:mm:ss.ss followed by Dec as ±dd:mm:ss.s, found none in {text!r}"
        )
    ra_pos, after_dec, ra, dec = found
    try:
        target, var_class, _ = parse_ogle_id(tokens[0])
    except OgleFormatError as exc:
        raise OgleFormatError(f"{where}: {exc}") from None
    before = tokens[1:ra_pos]
    after = tokens[after_dec:]
    field: str | None = None
    star_id: int | None = None
    if before and _OGLE3_FIELD.match(before[0]):
        # OGLE-III: field, star number, then 0..n subtype tokens (a type and a flag for some classes).
        survey = OGLE3
        star = before[1] if len(before) > 1 else ""
        if star not in _MISSING and not star.isdigit():
            raise OgleFormatError(
                f"{where}: star number (column 3, after the OGLE-III field {before[0]}) must be an integer, "
                f"got {star!r}"
            )
        field = before[0]
        star_id = None if star in _MISSING else int(star)
        subtype = before[2:]
    else:
        # OGLE-IV: only subtype tokens precede RA. A number there is a broken OGLE-III line (no field).
        survey = OGLE4
        subtype = before
        if any(_NUMBER.match(t) for t in subtype):
            raise OgleFormatError(
                f"{where}: expected ID, OGLE-III field, star number and subtype (OGLE-III) or ID and subtype "
                f"(OGLE-IV) before RA, found {' '.join(before)!r}"
            )
        if after:
            gap = spans[after_dec].start() - spans[after_dec - 1].end()
            if gap <= _OGLE4_ID_WIDTH:
                # The token sits in the OGLE-IV id column: it must be that id (or OGLE's "-" for none).
                match = _OGLE4_ID.match(after[0])
                if match is None and after[0] != "-":
                    raise OgleFormatError(
                        f"{where}: expected the OGLE-IV id (FIELD.CCD.STAR, e.g. BLG617.16.97164) or a blank "
                        f"column after Dec, found {after[0]!r}"
                    )
                if match is not None:
                    field, star_id = match["field"], int(match["star"])
                after = after[1:]
    subtype = [t for t in subtype if t != "-"]  # OGLE's "-" for a missing value
    return {
        "ogle_id": tokens[0],
        "target": target,
        "field": field,
        "star_id": star_id,
        "subtype": " ".join(subtype) if subtype else None,
        "ra_str": ra,
        "dec_str": dec,
        "var_class": var_class,
        "cross_ids": " ".join(after),
        "survey": survey,
    }


def read_ogle_ident(
    path: str | os.PathLike, period_tables: Sequence[str | os.PathLike] | None = None
) -> pd.DataFrame:
    """Read an OGLE-III or OGLE-IV ``ident.dat`` table, optionally with periods from per-mode tables.

    Parameters
    ----------
    path : path-like
        ``ident.dat`` in either layout (module docstring), one layout per file. OGLE-III: ID, field, star
        number, subtype tokens (none, one, or a type and a flag), RA (``hh:mm:ss.ss``), Dec (``±dd:mm:ss.s``),
        optional cross-identifications. OGLE-IV: ID, subtype tokens (possibly none), RA, Dec (with colons or
        blanks), then the columns OGLE-IV id, OGLE-III id, OGLE-II id and other designation, each blank when
        absent. A line is OGLE-III when an OGLE-III field (``LMC175.6``) follows the ID; otherwise OGLE-IV.
        The OGLE-IV id is the token right after Dec when it starts within the 16-character width of that
        column (a blank column leaves a longer run of blanks); it must then read ``FIELD.CCD.STAR`` with a
        two-digit CCD, or ``-``.
    period_tables : sequence of path-like, optional
        ``cepF.dat``-style tables (:func:`read_ogle_period_table`) whose ``period`` (and ``t0``,
        ``i_mag``, ``v_mag``, ``i_amp``) are joined on the ID. An object listed in two tables (a double-mode
        star in both ``cepF.dat`` and ``cep1O.dat``) keeps the first table's values.

    Returns
    -------
    pandas.DataFrame
        Columns ``ogle_id``, ``target``, ``field`` (OGLE-III field such as ``LMC175.6``, or OGLE-IV field and
        CCD such as ``BLG617.16``; missing for an OGLE-IV line without an OGLE-IV id), ``star_id`` (nullable
        Int64: the star number in that field), ``subtype`` (the tokens before RA, joined by a space, e.g.
        ``F``, ``1O/2O``, ``singlemode``; missing where there are none), ``ra``, ``dec`` (J2000, deg),
        ``var_class`` (from the ID, e.g. ``OGLE-LMC-CEP-0002`` → ``CEP``), ``cross_ids`` (the remaining
        tokens joined by spaces: for OGLE-IV the OGLE-III, OGLE-II and other ids, not the OGLE-IV id), ``survey``
        (``"OGLE-III"`` or ``"OGLE-IV"``, the layout, which says what ``field`` means), and the period-table
        columns when ``period_tables`` is given (NaN for IDs absent from them).

    Raises
    ------
    OgleFormatError
        Naming the file and line: no RA/Dec, an ID not of the form ``OGLE-<target>-<class>-<number>``, an
        OGLE-III field without an integer star number, a number before RA in the OGLE-IV layout, something
        other than an OGLE-IV id in that column, a file that mixes the two layouts, or a repeated ID.
    """
    path = Path(path)
    records = []
    with open(path, encoding="ascii", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].rstrip()
            if not text.strip():
                continue
            record = _parse_ident_line(text, f"{path}, line {lineno}")
            if records and record["survey"] != records[0]["survey"]:
                # Per file, not per line: an OGLE-III line that lost its field would otherwise pass as OGLE-IV.
                raise OgleFormatError(
                    f"{path}, line {lineno}: {record['survey']} layout, but the lines before have the "
                    f"{records[0]['survey']} layout"
                )
            records.append(record)
    if not records:
        raise OgleFormatError(f"{path}: no ident lines found")
    frame = pd.DataFrame(records)
    frame["star_id"] = frame["star_id"].astype("Int64")
    frame.insert(5, "ra", Angle(frame.pop("ra_str").to_numpy(), unit=u.hourangle).deg)
    frame.insert(6, "dec", Angle(frame.pop("dec_str").to_numpy(), unit=u.deg).deg)
    if frame["ogle_id"].duplicated().any():
        dup = frame.loc[frame["ogle_id"].duplicated(), "ogle_id"].iloc[0]
        raise OgleFormatError(f"{path}: ID {dup} appears more than once")
    if period_tables:
        periods = pd.concat([read_ogle_period_table(p) for p in period_tables], ignore_index=True)
        periods = periods.drop_duplicates("ogle_id", keep="first")
        frame = frame.merge(periods, on="ogle_id", how="left")
    return frame


#: Output column → source column of the OGLE-III × Gaia DR2 tables (paper 000 authors' CSVs).
XMATCH_COLUMNS: dict[str, str] = {
    "ogle_id": "OGLE-ID",
    "var_class": "Type",
    "subtype": "subType",
    "period": "Period",
    "i_mag": "I",
    "v_i": "V_I",
    "ogle_ra": "RA",
    "ogle_dec": "Dec",
    "source_id": "source_id",
    "gaia_ra": "ra_x",
    "gaia_dec": "dec_x",
    "parallax": "parallax",
    "pmra": "pmra",
    "pmdec": "pmdec",
    "phot_g_mean_mag": "phot_g_mean_mag",
    "phot_bp_mean_mag": "phot_bp_mean_mag",
    "phot_rp_mean_mag": "phot_rp_mean_mag",
    "bp_rp": "bp_rp",
    "teff_val": "teff_val",
    "radius_val": "radius_val",
    "lum_val": "lum_val",
    "r_est": "r_est",
    "snr": "SNR",
    "gaia_var_class": "best_class_name",
}
_XMATCH_REQUIRED = (
    "OGLE-ID",
    "Type",
    "Period",
    "RA",
    "Dec",
    "source_id",
    "ra_x",
    "dec_x",
    "phot_g_mean_mag",
    "r_est",
)


def read_ogle_gaia_xmatch(path: str | os.PathLike) -> pd.DataFrame:
    """Read one OGLE-III × Gaia DR2 cross-match CSV of the PELS-VAE authors into normalised columns.

    Parameters
    ----------
    path : path-like
        ``cmd_confirmed.csv``, ``var_conf_matches.csv``, ``cmd_secondaries_confirmed.csv``,
        ``one_pmrad_match.csv`` or ``gaiaVar_noClass_confirmed.csv``, each possibly gzip-compressed
        (``.csv.gz``). Column order differs between them, so columns are taken by name.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`XMATCH_COLUMNS` (``source_id`` nullable Int64, periods in d, magnitudes in mag,
        coordinates in deg, pm in mas/yr, ``r_est`` in pc; a column absent from the file is all-NaN), plus

        ``ang_dist_arcsec``
            The file's ``angDist``. Its unit is **arcsec**, not deg: it equals, to 5e-7″, the separation
            between the OGLE position (``RA``, ``Dec``) and the Gaia position propagated to J2000
            (``ra_epoch2000``, ``dec_epoch2000``), and its maximum is just under the 2″ search radius of
            paper 000 Sec. 2.3. ``cmd_secondaries_confirmed.csv`` has no ``angDist``: NaN there.
        ``sep_arcsec``
            Separation between the OGLE position and the Gaia epoch-2015.5 position (``ra_x``, ``dec_x``)
            recomputed here for every file (differs from ``angDist`` by the proper motion over 15.5 yr).
        ``abs_g``
            M_G = G − 5 log10(r_est / 10 pc), recomputed, because the files' ``abs_Gmag`` is a copy of
            ``abs_Imag`` in ``cmd_confirmed.csv`` and ``var_conf_matches.csv`` (data README). NaN where
            ``r_est`` is missing or not positive. No extinction correction (the paper applies none).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype={"source_id": "Int64", "OGLE-ID": str, "Type": str, "subType": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise OgleFormatError(f"{path}: not a readable OGLE-Gaia cross-match CSV ({exc})") from exc
    missing = [c for c in _XMATCH_REQUIRED if c not in raw.columns]
    if missing:
        raise OgleFormatError(f"{path}: missing required column(s) {missing}; found {list(raw.columns)}")
    out = pd.DataFrame(index=raw.index)
    for new, old in XMATCH_COLUMNS.items():
        if old in raw.columns:
            out[new] = raw[old]
        else:
            out[new] = np.nan
    for col in out.columns:
        if col not in ("ogle_id", "var_class", "subtype", "source_id", "gaia_var_class"):
            out[col] = pd.to_numeric(out[col], errors="raise").astype(np.float64)
    bad_id = ~out["ogle_id"].astype(str).str.match(_OGLE_ID.pattern)
    if bad_id.any():
        row = int(np.flatnonzero(bad_id.to_numpy())[0])
        raise OgleFormatError(
            f"{path}: column OGLE-ID, row {row}: {out['ogle_id'].iloc[row]!r} is not an OGLE ID"
        )
    id_class = out["ogle_id"].str.split("-").str[2]
    mismatch = id_class != out["var_class"]
    if mismatch.any():
        row = int(np.flatnonzero(mismatch.to_numpy())[0])
        raise OgleFormatError(
            f"{path}: column Type, row {row}: {out['var_class'].iloc[row]!r} disagrees with the class in "
            f"{out['ogle_id'].iloc[row]}"
        )
    bad_period = ~(out["period"] > 0)
    if bad_period.any():
        row = int(np.flatnonzero(bad_period.to_numpy())[0])
        raise OgleFormatError(
            f"{path}: column Period, row {row}: expected > 0 d, got {out['period'].iloc[row]}"
        )
    out["ang_dist_arcsec"] = raw["angDist"].astype(np.float64) if "angDist" in raw.columns else np.nan
    out["sep_arcsec"] = _separation_arcsec(out["ogle_ra"], out["ogle_dec"], out["gaia_ra"], out["gaia_dec"])
    r_est = out["r_est"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["abs_g"] = np.where(r_est > 0, out["phot_g_mean_mag"] - 5.0 * np.log10(r_est / 10.0), np.nan)
    return out


def _separation_arcsec(ra1: pd.Series, dec1: pd.Series, ra2: pd.Series, dec2: pd.Series) -> np.ndarray:
    """Great-circle separation (haversine, numerically safe at sub-arcsec scales), inputs in deg."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1, dec1, ra2, dec2))
    hav = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))) * 3600.0


def read_training_meta_ids(path: str | os.PathLike) -> pd.Series:
    """Read ``training_meta_id.csv``: the Gaia source_id of each example of the authors' augmented set.

    Returns
    -------
    pandas.Series
        int64 ``source_id`` values, one per training example; ids repeat, one repeat per augmented copy.
    """
    path = Path(path)
    raw = pd.read_csv(path)
    if "GAIA_source_id" not in raw.columns:
        raise OgleFormatError(f"{path}: expected column GAIA_source_id, found {list(raw.columns)}")
    ids = raw["GAIA_source_id"]
    if ids.isna().any() or not pd.api.types.is_integer_dtype(ids):
        raise OgleFormatError(f"{path}: column GAIA_source_id must be integers without gaps")
    return ids.astype(np.int64).rename("source_id")


#: The PELS-VAE authors' OGLE-III × Gaia DR2 tables and the Table-4 row each one holds (paper 000 App. A).
PUBLISHED_XMATCH_TABLES: dict[str, str] = {
    "cmd_confirmed.csv": "cmd_validated",
    "var_conf_matches.csv": "same_var_class",
    "one_pmrad_match.csv": "one_in_pm_radius",
    "gaiaVar_noClass_confirmed.csv": "variable_no_class",
    "cmd_secondaries_confirmed.csv": "second_cmd_validated",
}


def published_table_paths(directory: str | os.PathLike) -> dict[str, Path]:
    """Each of the authors' tables (:data:`PUBLISHED_XMATCH_TABLES`) in ``directory``, as the authors ship it
    (``cmd_confirmed.csv``) or gzip-compressed (``cmd_confirmed.csv.gz``, as in the repository's
    ``resources/ogle3_gaiadr2_xmatch``); pandas reads both the same way.

    Raises
    ------
    OgleFormatError
        Naming the directory and the tables found in neither form.
    """
    directory = Path(directory)
    found, missing = {}, []
    for name in PUBLISHED_XMATCH_TABLES:
        candidates = [directory / name, directory / f"{name}.gz"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise OgleFormatError(
            f"{directory}: missing the authors' cross-match table(s) {missing} (plain or .gz)"
        )
    return found


@dataclass
class PublishedCrossmatch:
    """The authors' tables (:data:`PUBLISHED_XMATCH_TABLES`) as inputs of the OGLE × Gaia cascade
    (:func:`latentsky.variables.crossmatch.run_cascade`).

    Attributes
    ----------
    ogle : DataFrame
        One row per OGLE object (``ogle_id`` unique): ``ra``, ``dec`` (OGLE, deg), ``var_class``,
        ``subtype``, ``period``.
    gaia : DataFrame
        One row per Gaia source of any table: :data:`latentsky.io.gaia_columns.GAIA_COLUMNS` plus ``radius_val``,
        ``lum_val``. ``phot_variable_flag`` is ``VARIABLE`` for the sources of the two variability tables,
        whose ``best_class_name`` (``var_conf_matches.csv``) becomes ``gaia_var_class``.
    published : DataFrame
        Per OGLE object: ``published_tables`` (file names joined by "+"), ``published_rows`` (the authors'
        Table-4 rows, joined the same way) and ``published_source_ids`` (list of the Gaia source_ids the
        authors accepted for it: two for a few objects listed twice).
    """

    ogle: pd.DataFrame
    gaia: pd.DataFrame
    published: pd.DataFrame


def read_published_crossmatch(directory: str | os.PathLike) -> PublishedCrossmatch:
    """Read the five OGLE-III × Gaia DR2 tables of the PELS-VAE authors into cascade inputs.

    Every table is read with :func:`read_ogle_gaia_xmatch` (so its checks and column fixes apply). A source
    in two tables keeps one row: the variability information of either (a source the authors list as a
    Gaia variable is one). Missing tables raise :class:`OgleFormatError` naming them.
    """
    paths = published_table_paths(directory)
    frames = []
    for name, row in PUBLISHED_XMATCH_TABLES.items():
        xm = read_ogle_gaia_xmatch(paths[name])
        variable = name in ("var_conf_matches.csv", "gaiaVar_noClass_confirmed.csv")
        frames.append(xm.assign(file=name, table_row=row, variable=variable))
    rows = pd.concat(frames, ignore_index=True)

    ogle = rows.drop_duplicates("ogle_id")[
        ["ogle_id", "ogle_ra", "ogle_dec", "var_class", "subtype", "period", "i_mag", "v_i"]
    ]
    ogle = ogle.rename(columns={"ogle_ra": "ra", "ogle_dec": "dec"}).reset_index(drop=True)

    by_source = rows.sort_values(["variable", "gaia_var_class"], ascending=False, na_position="last")
    gaia = by_source.drop_duplicates("source_id").sort_values("source_id")
    gaia = pd.DataFrame(
        {
            "source_id": gaia["source_id"].to_numpy(np.int64),
            "ra": gaia["gaia_ra"].to_numpy(),
            "dec": gaia["gaia_dec"].to_numpy(),
            "pmra": gaia["pmra"].to_numpy(),
            "pmdec": gaia["pmdec"].to_numpy(),
            "phot_g_mean_mag": gaia["phot_g_mean_mag"].to_numpy(),
            "bp_rp": gaia["bp_rp"].to_numpy(),
            "teff_val": gaia["teff_val"].to_numpy(),
            "r_est": gaia["r_est"].to_numpy(),
            "phot_variable_flag": np.where(gaia["variable"], "VARIABLE", "NOT_AVAILABLE"),
            "gaia_var_class": pd.array(gaia["gaia_var_class"].to_numpy(), dtype="string"),
            "radius_val": gaia["radius_val"].to_numpy(),
            "lum_val": gaia["lum_val"].to_numpy(),
        }
    )
    grouped = rows.groupby("ogle_id", sort=False)
    published = pd.DataFrame(
        {
            "published_tables": grouped["file"].agg(lambda s: "+".join(dict.fromkeys(s))),
            "published_rows": grouped["table_row"].agg(lambda s: "+".join(dict.fromkeys(s))),
            "published_source_ids": grouped["source_id"].agg(lambda s: sorted({int(v) for v in s})),
        }
    ).reindex(ogle["ogle_id"])
    return PublishedCrossmatch(ogle=ogle, gaia=gaia.reset_index(drop=True), published=published.reset_index())


def compare_with_published(matches: pd.DataFrame, published: PublishedCrossmatch) -> pd.DataFrame:
    """Join cascade results with the authors' decisions: ``matches`` plus the ``published_*`` columns and
    ``agrees`` (the cascade accepted a source the authors accepted for the same object)."""
    out = matches.merge(published.published, on="ogle_id", how="left", validate="1:1")
    chosen = out["source_id"].astype("Int64").fillna(-1).to_numpy(np.int64)
    out["agrees"] = [
        bool(acc) and int(sid) in (ids if isinstance(ids, list | np.ndarray) else ())
        for acc, sid, ids in zip(out["accepted"], chosen, out["published_source_ids"], strict=True)
    ]
    return out


def concat_ogle_objects(objects: Sequence[pd.DataFrame], names: Sequence[str] | None = None) -> pd.DataFrame:
    """Concatenate per-directory OGLE objects tables (:mod:`latentsky.fetch.ogle3` outputs), sorted by id.

    Raises :class:`OgleFormatError` naming the tables when a column of :data:`OBJECT_COLUMNS` is missing or
    an ``ogle_id`` appears in two of them (the same directory configured twice).
    """
    names = list(names) if names is not None else [f"table {i}" for i in range(len(objects))]
    for name, frame in zip(names, objects, strict=True):
        missing = [c for c in OBJECT_COLUMNS if c not in frame.columns]
        if missing:
            raise OgleFormatError(f"{name}: missing column(s) {missing} of an OGLE objects table")
    tagged = pd.concat(
        [f[list(OBJECT_COLUMNS)].assign(_source=n) for f, n in zip(objects, names, strict=True)],
        ignore_index=True,
    )
    dup = tagged["ogle_id"].duplicated(keep=False)
    if dup.any():
        first = tagged.loc[dup, "ogle_id"].iloc[0]
        where = sorted(set(tagged.loc[tagged["ogle_id"] == first, "_source"]))
        raise OgleFormatError(f"OGLE ID {first} appears in more than one catalog: {where}")
    return tagged.drop(columns="_source").sort_values("ogle_id", kind="stable").reset_index(drop=True)


def concat_ogle_catalogs(
    objects: Sequence[pd.DataFrame], light_curves: Sequence[pd.DataFrame], names: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """In memory, :func:`concat_ogle_objects` and the light curves concatenated and sorted by (id, time) —
    for small catalogs and tests; the workflow streams the curves (:func:`merge_light_curve_files`)."""
    merged = concat_ogle_objects(objects, names)
    curves = pd.concat(list(light_curves), ignore_index=True)
    curves = curves.sort_values(["ogle_id", "time"], kind="stable").reset_index(drop=True)
    return merged, curves


def _id_range(path: Path) -> tuple[str, str] | None:
    """(first, last) ``ogle_id`` of a light-curve file sorted by id, from its first and last row groups; None
    for an empty file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    if meta.num_rows == 0:
        return None
    col = meta.schema.to_arrow_schema().get_field_index("ogle_id")
    if col < 0:
        raise OgleFormatError(f"{path}: not a light-curve table: no column ogle_id")
    first = meta.row_group(0).column(col).statistics
    last = meta.row_group(meta.num_row_groups - 1).column(col).statistics
    if first is None or last is None or not (first.has_min_max and last.has_min_max):
        ids = pq.read_table(path, columns=["ogle_id"]).column(0)  # no statistics: read the column
        return ids[0].as_py(), ids[-1].as_py()
    return str(first.min), str(last.max)


def merge_light_curve_files(
    paths: Sequence[str | os.PathLike], out: str | os.PathLike, provenance: dict, batch_rows: int = 1_000_000
) -> int:
    """Merge per-directory light-curve tables (each sorted by ``ogle_id``, ``time`` as the fetcher writes them)
    into one table sorted the same way, streaming: at paper scale the OGLE-III bulge LPVs alone are ~10⁸
    epochs, more than a job holds as one pandas frame.

    A catalog's ids share one prefix (``OGLE-BLG-LPV-``), so the merged order is the files one after another
    in the order of their first id; files whose id ranges interleave (e.g. four- and five-digit ids of one
    prefix from two surveys) are sorted together in memory. A part that is not sorted by id is refused with
    an error naming it. Returns the number of epochs written.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from latentsky.provenance.files import write_parquet_stream

    columns = ["ogle_id", "time", "mag", "err"]
    schema = pa.schema([("ogle_id", pa.string())] + [(c, pa.float64()) for c in columns[1:]])
    ranges = {Path(p): _id_range(Path(p)) for p in paths}
    ordered = sorted((r, p) for p, r in ranges.items() if r is not None)
    groups: list[list[Path]] = []
    last_max = None
    for (lo, hi), path in ordered:
        if groups and last_max is not None and lo <= last_max:
            groups[-1].append(path)  # interleaving id ranges: these are sorted together
        else:
            groups.append([path])
        last_max = hi if last_max is None or hi > last_max else last_max

    def parts():
        for group in groups:
            if len(group) > 1:
                table = pa.concat_tables([pq.read_table(p, columns=columns).cast(schema) for p in group])
                yield table.sort_by([("ogle_id", "ascending"), ("time", "ascending")])
                continue
            previous = None
            for batch in pq.ParquetFile(group[0]).iter_batches(batch_size=batch_rows, columns=columns):
                table = pa.Table.from_batches([batch]).cast(schema)
                ids = table.column("ogle_id")
                unsorted = (
                    len(ids) > 1
                    and not pc.all(pc.greater_equal(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py()
                )
                if unsorted or (previous is not None and len(ids) and ids[0].as_py() < previous):
                    raise OgleFormatError(f"{group[0]}: light curves not sorted by ogle_id; re-fetch it")
                if len(ids):
                    previous = ids[-1].as_py()
                yield table

    return write_parquet_stream(parts(), out, provenance, schema)
