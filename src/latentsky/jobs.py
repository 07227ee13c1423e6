"""Glue for Snakemake ``script:`` jobs: logging to the rule's log, seeds, provenance.

Scripts under scripts/ stay thin: they open :func:`job_logging`, read inputs, call the library, and write
outputs through :mod:`latentsky.provenance.files` with :func:`job_record`.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from latentsky.provenance.record import record_from_snakemake

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def job_logging(smk: Any) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr of the job to its ``log:`` file; log a traceback on failure.

    Libraries that print (dustmaps does) end up in the log rather than on the terminal of a SLURM
    node nobody reads.
    """
    log_path = smk.log[0]
    with open(log_path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(logging.INFO)
        logger = logging.getLogger(f"latentsky.{smk.rule}")
        try:
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                logger.info("rule %s, wildcards %s", smk.rule, dict(smk.wildcards.items()))
                start = time.monotonic()
                yield logger
                logger.info("done; %s", usage_report(smk, time.monotonic() - start))
        except BaseException:
            logger.exception("rule %s failed", smk.rule)
            # The traceback also goes to the real stderr, so Snakemake's console shows it.
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            sys.stdout.flush()


def peak_memory_mb() -> float:
    """Peak resident memory (MB) of this process and of the largest child it waited for (Linux: kB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def usage_report(smk: Any, seconds: float) -> str:
    """What the job used against what its rule asked for — the measurement rule resources are sized from
    (each rule's ``resources:`` comment); a warning-worthy line when the peak nears ``mem_mb``."""
    resources = getattr(smk, "resources", None)
    mem_mb = getattr(resources, "mem_mb", None)
    runtime = getattr(resources, "runtime", None)
    peak = peak_memory_mb()
    text = f"peak memory {peak:.0f} MB of mem_mb {mem_mb}, wall time {seconds:.1f} s of runtime {runtime} min"
    if isinstance(mem_mb, (int, float)) and peak > 0.8 * mem_mb:
        text += " — over 80 % of mem_mb: raise it for this input size"
    return text


def use_job_threads(smk: Any) -> None:
    """Limit torch's intra-op threads to the job's ``threads``, so parallel jobs do not oversubscribe."""
    import torch

    torch.set_num_threads(max(1, int(smk.threads)))


def job_record(
    smk: Any,
    *,
    seed: int | None = None,
    device: str = "cpu",
    extra: Mapping[str, Any] | None = None,
    leave_out: Iterable[str] = (),
) -> dict[str, Any]:
    """Provenance record of this job (see :func:`latentsky.provenance.record.record_from_snakemake`)."""
    return record_from_snakemake(smk, seed=seed, device=device, extra=extra, leave_out=leave_out)


def row_slices(n_rows: int, max_rows: int | None) -> list[tuple[int, int]]:
    """Contiguous [start, stop) row ranges covering ``n_rows`` rows, at most ``max_rows`` each and of
    near-equal size (so the jobs computing them are balanced); one range when ``max_rows`` is None."""
    n_rows = int(n_rows)
    if n_rows < 0:
        raise ValueError(f"row count must be ≥ 0, got {n_rows}")
    if max_rows is None or n_rows <= max_rows:
        return [(0, n_rows)]
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be ≥ 1, got {max_rows}")
    k = -(-n_rows // int(max_rows))
    bounds = [(i * n_rows) // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
