"""Bootstrap intervals over goals, so that every score comes with its uncertainty.

Why: a test split of 40-100 goals moves a success rate in steps of 1-2.5 points, so a
difference of one or two goals between two models is noise. The unit of resampling is the
goal (the test task), because the goals are what was sampled; episodes are greedy, so a
goal's outcome is fixed for a given model.

- `bootstrap_ci`: percentile bootstrap 95% interval of a mean over goals.
- `paired_bootstrap_ci`: interval of mean(a) - mean(b) for two models evaluated on the SAME
  goals: each resample draws goals, and both models' outcomes on those goals go with them.
  Goals differ far more in difficulty than models do, so pairing removes the between-goal
  variance that the two means share; an unpaired interval (`unpaired_bootstrap_ci`, kept for
  comparison) is much wider when the outcomes are correlated, and would call real
  differences noise.

Values are on the scale they are given in (pass `scale=100` for x100). Optional `strata`
(goal -> environment) resample within each stratum and average the stratum means with equal
weight: the paper's "Average" column over environments. Everything is seeded, so the same
inputs give the same interval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
SEED = 0


def _as_mapping(values: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(values, Mapping):
        return {str(key): float(value) for key, value in values.items()}
    return {str(index): float(value) for index, value in enumerate(values)}


def _groups(keys: list[str], strata: Mapping[str, str] | None) -> list[np.ndarray]:
    """Index arrays into `keys`, one per stratum (one group of all keys without strata)."""
    if not strata:
        return [np.arange(len(keys))]
    missing = [key for key in keys if key not in strata]
    if missing:
        raise ValueError(f"no stratum given for goal(s) {_names(missing)}")
    labels = [strata[key] for key in keys]
    return [np.array([i for i, label in enumerate(labels) if label == stratum]) for stratum in sorted(set(labels))]


def _names(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def _resampled_means(values: np.ndarray, groups: list[np.ndarray], rng: np.random.Generator,
                     resamples: int) -> np.ndarray:
    """`resamples` bootstrap replicates of the (stratum-averaged) mean of each row of
    `values` (shape: series x goals); the SAME goal draws are used for every row, which is
    what pairs the series. Returns shape (series, resamples)."""
    out = np.zeros((values.shape[0], resamples))
    for group in groups:
        draws = group[rng.integers(0, len(group), size=(resamples, len(group)))]
        out += values[:, draws].mean(axis=2)
    return out / len(groups)


def _percentiles(replicates: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def mean(values: Sequence[float] | Mapping[str, float], strata: Mapping[str, str] | None = None,
         scale: float = 1.0) -> float:
    """The point estimate matching the intervals: the mean over goals (with `strata`, the
    equal-weight mean of the stratum means)."""
    named = _as_mapping(values)
    if not named:
        raise ValueError("no goals to average")
    keys = list(named)
    array = np.array([named[key] for key in keys])
    return float(scale * np.mean([array[group].mean() for group in _groups(keys, strata)]))


def bootstrap_ci(values: Sequence[float] | Mapping[str, float], strata: Mapping[str, str] | None = None,
                 scale: float = 1.0, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-goal `values` (a sequence, or a
    mapping goal -> value). One goal gives a zero-width interval at its value."""
    named = _as_mapping(values)
    if not named:
        raise ValueError("no goals to resample")
    keys = list(named)
    array = np.array([[named[key] for key in keys]])
    replicates = _resampled_means(array, _groups(keys, strata), np.random.default_rng(seed), resamples)[0]
    lo, hi = _percentiles(replicates, level)
    return scale * lo, scale * hi


def _check_same_goals(a: Mapping[str, float], b: Mapping[str, float]) -> list[str]:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        parts = [f"only in the first: {_names(only_a)}" if only_a else "",
                 f"only in the second: {_names(only_b)}" if only_b else ""]
        raise ValueError("a paired comparison needs the same goals on both sides; "
                         + "; ".join(part for part in parts if part))
    return sorted(a)


def paired_bootstrap_ci(a: Mapping[str, float], b: Mapping[str, float], strata: Mapping[str, str] | None = None,
                        scale: float = 1.0, resamples: int = RESAMPLES, level: float = LEVEL,
                        seed: int = SEED) -> tuple[float, float]:
    """Interval of mean(a) - mean(b), two models' per-goal values on the same goals (mappings
    goal -> value): goals are resampled once per replicate and both sides use the same draw.
    Different goal sets raise ValueError naming the goals that are on one side only.
    Identical inputs give (0, 0)."""
    a, b = _as_mapping(a), _as_mapping(b)
    keys = _check_same_goals(a, b)
    if not keys:
        raise ValueError("no goals to resample")
    values = np.array([[a[key] for key in keys], [b[key] for key in keys]])
    replicates = _resampled_means(values, _groups(keys, strata), np.random.default_rng(seed), resamples)
    lo, hi = _percentiles(replicates[0] - replicates[1], level)
    return scale * lo, scale * hi


def unpaired_bootstrap_ci(a: Sequence[float] | Mapping[str, float], b: Sequence[float] | Mapping[str, float],
                          scale: float = 1.0, resamples: int = RESAMPLES, level: float = LEVEL,
                          seed: int = SEED) -> tuple[float, float]:
    """Interval of mean(a) - mean(b) resampling each side on its own: right for two
    independent samples of goals, too wide (conservative) for two models on the same goals.
    Kept to show what pairing buys; the results use `paired_bootstrap_ci`."""
    rng = np.random.default_rng(seed)
    sides = []
    for values in (a, b):
        array = np.array([list(_as_mapping(values).values())])
        if array.size == 0:
            raise ValueError("no goals to resample")
        sides.append(_resampled_means(array, [np.arange(array.shape[1])], rng, resamples)[0])
    lo, hi = _percentiles(sides[0] - sides[1], level)
    return scale * lo, scale * hi
