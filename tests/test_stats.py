"""Bootstrap intervals over goals (agentr_lib.stats)."""

import numpy as np
import pytest

from agentr_lib.stats import bootstrap_ci, mean, paired_bootstrap_ci, unpaired_bootstrap_ci


def _outcomes(n: int, rate: float, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.random(n) < rate]


def test_interval_contains_the_mean_and_is_seeded():
    values = _outcomes(100, 0.3)
    lo, hi = bootstrap_ci(values, scale=100)
    assert lo < mean(values, scale=100) < hi
    assert 0 <= lo and hi <= 100
    assert bootstrap_ci(values, scale=100) == (lo, hi)  # same seed, same interval
    rewards = list(np.random.default_rng(3).random(50))  # continuous, so replicates rarely tie
    assert bootstrap_ci(rewards, seed=7) != bootstrap_ci(rewards)


def test_interval_matches_the_normal_approximation_for_a_proportion():
    values = [1.0] * 30 + [0.0] * 70  # p = 0.3, n = 100: +-1.96 * sqrt(.21 / 100) = +-9.0 points
    lo, hi = bootstrap_ci(values, scale=100)
    assert lo == pytest.approx(21.0, abs=1.5) and hi == pytest.approx(39.0, abs=1.5)


def test_interval_shrinks_with_more_goals():
    widths = []
    for n in (25, 100, 400):
        lo, hi = bootstrap_ci([1.0, 0.0] * (n // 2), scale=100)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.25)  # ~ 1 / sqrt(n)


def test_constant_outcomes_and_a_single_goal_give_zero_width():
    assert bootstrap_ci([1.0] * 20, scale=100) == (100.0, 100.0)
    assert bootstrap_ci({"g": 0.4}) == (pytest.approx(0.4), pytest.approx(0.4))
    with pytest.raises(ValueError, match="no goals"):
        bootstrap_ci([])


def test_level_widens_the_interval():
    values = _outcomes(80, 0.5)
    lo95, hi95 = bootstrap_ci(values)
    lo50, hi50 = bootstrap_ci(values, level=0.5)
    assert lo95 < lo50 < hi50 < hi95
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(values, level=95)


def test_paired_identical_inputs_give_zero():
    a = {f"g{i}": v for i, v in enumerate(_outcomes(50, 0.4))}
    assert paired_bootstrap_ci(a, dict(a), scale=100) == (0.0, 0.0)


def test_paired_interval_is_narrower_than_unpaired_when_outcomes_are_correlated():
    # Model b solves what model a solves, plus 8 more goals of 100: outcomes highly correlated.
    a_values = [1.0] * 30 + [0.0] * 70
    b_values = [1.0] * 38 + [0.0] * 62
    a = {f"g{i}": v for i, v in enumerate(a_values)}
    b = {f"g{i}": v for i, v in enumerate(b_values)}
    paired = paired_bootstrap_ci(b, a, scale=100)
    unpaired = unpaired_bootstrap_ci(b, a, scale=100)
    assert paired[1] - paired[0] < 0.5 * (unpaired[1] - unpaired[0])
    assert paired[0] > 0  # paired: +8 points on the same goals is not noise
    assert unpaired[0] < 0  # unpaired: the same 8 points look like noise
    assert paired[0] < 8 < paired[1]


def test_paired_goal_order_does_not_matter_but_pairing_does():
    a = {f"g{i}": v for i, v in enumerate(_outcomes(60, 0.5, seed=2))}
    b = {f"g{i}": v for i, v in enumerate(_outcomes(60, 0.5, seed=3))}
    shuffled = dict(reversed(list(b.items())))
    assert paired_bootstrap_ci(a, b) == paired_bootstrap_ci(a, shuffled)
    # re-pairing b's outcomes with other goals changes the interval
    relabelled = dict(zip(b, reversed(list(b.values()))))
    assert paired_bootstrap_ci(a, b) != paired_bootstrap_ci(a, relabelled)


def test_paired_mismatched_goals_name_them():
    a = {"150": 1.0, "151": 0.0, "152": 1.0}
    b = {"150": 1.0, "153": 0.0, "152": 1.0}
    with pytest.raises(ValueError, match=r"only in the first: 151.*only in the second: 153"):
        paired_bootstrap_ci(a, b)


def test_strata_average_environments_with_equal_weight():
    # env x: 10 goals at 1.0; env y: 90 goals at 0.0 -> equal-weight mean 0.5 (pooled: 0.1)
    values = {f"x{i}": 1.0 for i in range(10)} | {f"y{i}": 0.0 for i in range(90)}
    strata = {key: key[0] for key in values}
    assert mean(values, strata=strata) == pytest.approx(0.5)
    assert mean(values) == pytest.approx(0.1)
    # within each stratum the outcomes are constant, so a stratified resample cannot move
    assert bootstrap_ci(values, strata=strata) == (pytest.approx(0.5), pytest.approx(0.5))
    lo, hi = bootstrap_ci(values)
    assert hi - lo > 0.05
    with pytest.raises(ValueError, match="no stratum given for goal.*x3"):
        bootstrap_ci(values, strata={k: v for k, v in strata.items() if k != "x3"})
