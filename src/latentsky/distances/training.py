"""Training the CMD flow on noisy parallaxes with iterative dust (paper 004, Sec. 2–3.3).

For each training star the paper computes a best-estimate CMD point and its variance (Sec. 3.2):

* 32 parallax samples from the truncated likelihood (eq. 1), distances d_i = 1/ϖ_i;
* 5 dust iterations with the current model (eq. 2 weights) give d_best; the map's median reddening at
  d_best dereddens the photometry;
* g_best is the *unweighted* mean of g_i = G − A_G − 5 log10(d_i/10 pc) over the raw parallax samples
  (weighting would feed the model's density back into its own training data, which the paper saw create
  artifacts), σ_g² = Var(g_i) + σ²_{G,Bayestar}; the colours are dereddened at d_best with
  σ²_{colour} = σ²_{colour,Bayestar};
* the loss is −(1/σ_P²) log P(g, bp−rp, bp−g)_best with σ_P² = σ_g² + σ²_{bp−rp} + σ²_{bp−g}.

We add the photometric variances to σ_P² (the paper's Bayestar-only colour variances vanish without a
dust map, which would make a star's weight infinite), and normalise the weights within each mini-batch
so the learning rate does not depend on the absolute error scale.

**Rounds.** Re-running the dust iteration for every star at every optimiser step costs 32 × 5 flow
passes per star per step. We run it once per *round* over the whole training set with the model as it
is at the round's start, then take ``steps_per_round`` optimiser steps on those points; the estimates
therefore follow the model as it learns. The round's points depend only on (model at round start, seed,
round number), so a run resumed from a checkpoint rebuilds them exactly and continues the same run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from latentsky import training
from latentsky.distances.dust import DustSource
from latentsky.distances.flow import CMDFlow, FlowArchitecture
from latentsky.distances.importance import iterate_dust
from latentsky.distances.stars import Stars, absolute_cmd, flow_log_prob
from latentsky.extinction import CRANMER2020

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    """Paper 004 values by default; the demo config shrinks the model and the number of steps."""

    architecture: FlowArchitecture = FlowArchitecture()
    n_parallax_samples: int = 32
    n_dust_iterations: int = 5
    batch_size: int = 2048
    learning_rate: float = 1e-3
    n_rounds: int = 5
    steps_per_round: int = 2000
    checkpoint_every: int = 500

    @property
    def total_steps(self) -> int:
        return self.n_rounds * self.steps_per_round

    def as_dict(self) -> dict:
        return asdict(self)


#: Fewer training stars than this cannot pin down a 3-D density.
MIN_TRAINING_STARS = 50


def training_settings(distances: dict) -> TrainingSettings:
    """The ``distances`` config block (``flow`` and ``training``) → :class:`TrainingSettings`."""
    t = distances["training"]
    return TrainingSettings(
        architecture=FlowArchitecture(**distances["flow"]),
        n_parallax_samples=int(t["n_parallax_samples"]),
        n_dust_iterations=int(t["n_dust_iterations"]),
        batch_size=int(t["batch_size"]),
        learning_rate=float(t["learning_rate"]),
        n_rounds=int(t["n_rounds"]),
        steps_per_round=int(t["steps_per_round"]),
        checkpoint_every=int(t["checkpoint_every"]),
    )


@dataclass
class TrainingPoints:
    """Best-estimate CMD points of the training stars for one round."""

    points: np.ndarray  # (N, 3): g, bp−rp, bp−g
    variance: np.ndarray  # (N,) σ_P²
    d_best: np.ndarray  # (N,) pc


def training_points(
    stars: Stars,
    flow: CMDFlow | None,
    dust: DustSource,
    settings: TrainingSettings,
    rng: np.random.Generator,
    device: str | torch.device = "cpu",
    batch_size: int = 16384,
) -> TrainingPoints:
    """Best-estimate CMD points and σ_P² (paper 004 Sec. 3.2) for every star, with the current ``flow``.

    ``flow=None`` (before any training) weights all samples equally, so d_best is the mean of d_i.
    """
    coeffs = CRANMER2020
    pts, var, dbest = [], [], []

    def log_density(points: np.ndarray) -> np.ndarray:
        if flow is None:
            return np.zeros(points.shape[:-1])
        return flow_log_prob(flow, points, device)

    if flow is not None:
        flow.eval()
    for start in range(0, len(stars), batch_size):
        batch = stars.subset(np.arange(start, min(start + batch_size, len(stars))))
        res = iterate_dust(
            batch,
            log_density,
            dust,
            n_samples=settings.n_parallax_samples,
            # Before any training the weights are uniform whatever the dust, so d_best is fixed after the
            # first iteration and the other four would repeat the same dust-map queries (≈ 40 s of the
            # demo's first round); the results the points use are the same.
            n_iterations=settings.n_dust_iterations if flow is not None else 1,
            rng=rng,
            prior=None,  # eq. 2 as printed: weights are the CMD density alone
            use_map_samples=False,  # median dust in training (paper 004 Sec. 3, assumptions)
        )
        e_med = np.median(res.reddening_at_best, axis=1)
        e_std = res.reddening_at_best.std(axis=1)
        g_i = absolute_cmd(
            batch.g_mag[:, None],
            batch.bp_rp[:, None],
            batch.bp_g[:, None],
            res.distances,
            e_med[:, None],
            coeffs,
        )[..., 0]
        colours = absolute_cmd(batch.g_mag, batch.bp_rp, batch.bp_g, res.d_best, e_med, coeffs)
        point = np.column_stack([g_i.mean(axis=1), colours[:, 1], colours[:, 2]])
        sigma2 = (
            g_i.var(axis=1)
            + (coeffs.a_g * e_std) ** 2
            + (coeffs.e_bp_rp * e_std) ** 2
            + (coeffs.e_bp_g * e_std) ** 2
            + batch.phot_var
        )
        pts.append(point)
        var.append(sigma2)
        dbest.append(res.d_best)
    return TrainingPoints(np.concatenate(pts), np.concatenate(var), np.concatenate(dbest))


def new_flow(settings: TrainingSettings, initial_points: np.ndarray, seed: int) -> CMDFlow:
    """A freshly initialised flow, standardised to the first round's points."""
    torch.manual_seed(seed)
    mean = initial_points.mean(axis=0)
    std = initial_points.std(axis=0)
    return CMDFlow(settings.architecture, mean, np.where(std > 0, std, 1.0))


@dataclass
class TrainerState:
    """Everything needed to continue a run exactly: saved in each checkpoint."""

    step: int
    model: dict
    optimizer: dict
    scheduler: dict | None
    round_start_model: dict
    losses: list[float]


class CMDFlowTrainer:
    """Rounds of (dust-iterated best estimates, then mini-batch steps); resumable at any checkpoint."""

    def __init__(
        self,
        stars: Stars,
        dust: DustSource,
        settings: TrainingSettings,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        self.stars = stars
        self.dust = dust
        self.settings = settings
        self.seed = seed
        self.device = torch.device(device)
        first = training_points(stars, None, dust, settings, self._round_rng(0), self.device)
        self.model = new_flow(settings, first.points, seed).to(self.device)
        self.model.set_support(first.points, 1.0 / first.variance)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.learning_rate)
        self.step = 0
        self.losses: list[float] = []
        self._round_start = copy.deepcopy(self.model.state_dict())
        self._points: TrainingPoints = first
        self._points_round: int | None = 0
        self._order = self._batch_order(0)

    def _round_rng(self, round_index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1, round_index])

    def _batch_order(self, round_index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, round_index])
        n = len(self.stars)
        reps = int(np.ceil(self.settings.steps_per_round * self.settings.batch_size / n)) + 1
        return np.concatenate([rng.permutation(n) for _ in range(reps)])

    def _points_for_round(self, round_index: int) -> TrainingPoints:
        if round_index == 0:
            return training_points(
                self.stars, None, self.dust, self.settings, self._round_rng(0), self.device
            )
        # The points of a round come from the model as it was when the round began.
        snapshot = copy.deepcopy(self.model)
        snapshot.load_state_dict(self._round_start)
        return training_points(
            self.stars, snapshot, self.dust, self.settings, self._round_rng(round_index), self.device
        )

    def state(self) -> TrainerState:
        return TrainerState(
            step=self.step,
            model=copy.deepcopy(self.model.state_dict()),
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            scheduler=None,
            round_start_model=copy.deepcopy(self._round_start),
            losses=list(self.losses),
        )

    def load_state(self, state: TrainerState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.step = state.step
        self.losses = list(state.losses)
        self._round_start = state.round_start_model
        self._points_round = None  # the round's points are rebuilt from round_start_model

    def train(
        self,
        until_step: int | None = None,
        on_resume_point: Callable[[TrainerState], None] | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> None:
        """Train up to ``until_step`` (default: all rounds), calling ``on_resume_point`` every N steps."""
        s = self.settings
        last = s.total_steps if until_step is None else min(until_step, s.total_steps)
        while self.step < last:
            round_index, offset = divmod(self.step, s.steps_per_round)
            if self._points_round != round_index:
                if offset == 0:
                    # A new round starts from the model as it is now; a run resumed mid-round instead
                    # keeps the round-start weights its checkpoint carries.
                    self._round_start = copy.deepcopy(self.model.state_dict())
                self._points = self._points_for_round(round_index)
                # The support follows the current estimates (weighted like the loss, by 1/σ_P²).
                self.model.set_support(self._points.points, 1.0 / self._points.variance)
                self._order = self._batch_order(round_index)
                self._points_round = round_index
                log.info("round %d: %d training points", round_index, len(self._points.points))
            idx = self._order[offset * s.batch_size : (offset + 1) * s.batch_size]
            loss = self._step(idx)
            self.losses.append(loss)
            self.step += 1
            if progress is not None:
                progress(self.step, loss)
            if on_resume_point is not None and (self.step % s.checkpoint_every == 0 or self.step == last):
                on_resume_point(self.state())

    def _step(self, idx: np.ndarray) -> float:
        x = torch.as_tensor(self._points.points[idx], dtype=torch.float32, device=self.device)
        w = torch.as_tensor(1.0 / self._points.variance[idx], dtype=torch.float32, device=self.device)
        w = w / w.sum()  # inverse-variance weights (paper 004 Sec. 3), normalised per batch
        self.model.train()
        loss = -(w * self.model.log_prob(x)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach().cpu())


def run_key(settings: TrainingSettings, seed: int, input_digests: list[str]) -> str:
    """Identity of a run: a resume file from another run (other settings, seed or data) is ignored."""
    return training.run_key(settings=settings.as_dict(), seed=seed, inputs=input_digests)


def trainer_resume_state(trainer: CMDFlowTrainer, state: TrainerState, key: str) -> dict:
    """A resumable checkpoint's payload (see :mod:`latentsky.provenance.files` for the file format)."""
    return {
        "run_key": key,
        "step": state.step,
        "model": state.model,
        "optimizer": state.optimizer,
        "round_start_model": state.round_start_model,
        "losses": torch.tensor(state.losses, dtype=torch.float64),
        "architecture": asdict(trainer.settings.architecture),
        "feature_mean": trainer.model.feature_mean.cpu(),
        "feature_std": trainer.model.feature_std.cpu(),
    }


def resume_from(trainer: CMDFlowTrainer, payload: dict, key: str) -> bool:
    """Load a resumable checkpoint into ``trainer`` if it belongs to the same run; return whether it did."""
    if payload.get("run_key") != key:
        return False
    trainer.model.feature_mean.copy_(payload["feature_mean"])
    trainer.model.feature_std.copy_(payload["feature_std"])
    trainer.load_state(
        TrainerState(
            step=int(payload["step"]),
            model=payload["model"],
            optimizer=payload["optimizer"],
            scheduler=None,
            round_start_model=payload["round_start_model"],
            losses=[float(x) for x in payload["losses"]],
        )
    )
    return True
