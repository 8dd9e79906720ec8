"""NAB's scoring rules against NAB's own documented properties."""

from __future__ import annotations

import math

import pytest

from twin.predict.scoring import (
    REWARD_LOW_FN,
    STANDARD,
    Series,
    probation_length,
    scaled_sigmoid,
    score_corpus,
)

N = 1000
WINDOWS = [(300, 399), (700, 759)]


def _scores(at: dict[int, float]) -> list[float]:
    s = [0.0] * N
    for i, v in at.items():
        s[i] = v
    return s


def _corpus(at: dict[int, float]) -> list[Series]:
    return [Series("a", _scores(at), WINDOWS), Series("b", _scores({}), [(500, 549)])]


def test_scaled_sigmoid_has_the_values_nab_documents() -> None:
    assert math.isclose(scaled_sigmoid(-1.0), 0.98661, abs_tol=1e-5)
    assert math.isclose(scaled_sigmoid(-0.5), 0.84828, abs_tol=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert math.isclose(scaled_sigmoid(1.0), -0.98661, abs_tol=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_fifteen_percent_capped_at_750_points() -> None:
    assert probation_length(1000) == 150
    assert probation_length(20000) == 750


@pytest.mark.parametrize("profile", [STANDARD, REWARD_LOW_FN])
def test_the_perfect_detector_scores_100_and_the_null_detector_0(profile: object) -> None:
    perfect = [
        Series("a", _scores({300: 1.0, 700: 1.0}), WINDOWS),
        Series("b", _scores({500: 1.0}), [(500, 549)]),
    ]
    got = score_corpus(perfect, profile)  # type: ignore[arg-type]
    assert math.isclose(got.normalised, 100.0)
    null = [Series(s.name, [0.5] * N, s.windows) for s in perfect]
    assert math.isclose(score_corpus(null, profile).normalised, 0.0)  # type: ignore[arg-type]


def test_an_early_detection_in_a_window_scores_more_than_a_late_one() -> None:
    early = score_corpus(_corpus({310: 1.0}))
    late = score_corpus(_corpus({390: 1.0}))
    assert early.raw > late.raw
    assert early.series[0].hit == late.series[0].hit == 1


def test_only_the_best_detection_in_a_window_counts() -> None:
    one = score_corpus(_corpus({310: 1.0}))
    many = score_corpus(_corpus({310: 1.0, 320: 1.0, 390: 1.0}))
    assert math.isclose(one.raw, many.raw)


def test_a_false_positive_far_from_any_window_costs_the_profiles_a_fp() -> None:
    hit = {300: 1.0}
    base = score_corpus(_corpus(hit), threshold=0.9)
    with_fp = score_corpus(_corpus({**hit, 200: 1.0}), threshold=0.9)  # before any window
    assert math.isclose(base.raw - with_fp.raw, STANDARD.fp)


def test_a_false_positive_just_after_a_window_costs_less_than_a_far_one() -> None:
    near = score_corpus(_corpus({300: 1.0, 402: 1.0}), threshold=0.9)
    far = score_corpus(_corpus({300: 1.0, 650: 1.0}), threshold=0.9)
    assert near.raw > far.raw


def test_a_missed_window_costs_a_fn_and_probation_is_not_scored() -> None:
    nothing = score_corpus(_corpus({}), threshold=0.9)
    assert math.isclose(nothing.raw, -3 * STANDARD.fn)
    in_probation = score_corpus(_corpus({10: 1.0}), threshold=0.9)
    assert math.isclose(in_probation.raw, nothing.raw)


def test_the_threshold_is_optimised_over_the_whole_corpus() -> None:
    # Window starts score 0.8, a false positive scores 0.9: detecting at 0.8 earns three
    # windows for one false positive, which beats detecting nothing or only the 0.9 point.
    corpus = [
        Series("a", _scores({300: 0.8, 700: 0.8, 200: 0.9}), WINDOWS),
        Series("b", _scores({500: 0.8}), [(500, 549)]),
    ]
    got = score_corpus(corpus)
    assert got.threshold == 0.8
    assert math.isclose(got.raw, 3.0 - STANDARD.fp)


def test_scores_outside_zero_one_and_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_corpus([Series("a", [math.nan] * 10, [])])
    with pytest.raises(ValueError, match="windows"):
        score_corpus([Series("a", [0.0] * 10, [(5, 20)])])
