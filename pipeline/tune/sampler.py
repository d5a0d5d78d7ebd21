"""The studies' sampler: TPE whose random stream for trial n is seeded with seed + n.

Workers that share a study (spawned here, or `cgankd tune` started on other machines) each build
their own sampler from the same params seed. Seeded once per process, they would draw the same
values in the same order, so two workers would run the same trial. Trial numbers are unique
within a study, so seeding per trial makes every worker draw its own values, and a study run by
one process draws the same values again on a rerun from scratch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


def tpe(seed: int) -> TPESampler:
    with warnings.catch_warnings():  # multivariate and constant_liar are marked experimental
        warnings.simplefilter("ignore", ExperimentalWarning)
        return TPESampler(n_startup_trials=5, seed=seed, multivariate=True, constant_liar=True)


class TrialSeededTPE(BaseSampler):
    """TPE (5 random start-up trials, multivariate, constant liar) reseeded for each trial."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._tpe = tpe(seed)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._tpe = tpe(self.seed + trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
