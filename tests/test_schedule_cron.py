"""Cron matching: the five-field subset against hand-checked instants, and located refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twin.campaign.cron import Cron, CronError, Every


def t(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[misc]


def occurrences(expr: str, start: datetime, n: int) -> list[datetime]:
    c = Cron.parse(expr)
    out, now = [], start
    for _ in range(n):
        nxt = c.next_after(now)
        assert nxt is not None
        out.append(nxt)
        now = nxt
    return out


def brute(expr: str, start: datetime, end: datetime) -> list[datetime]:
    """Every minute in [start, end) that matches: the definition, checked minute by minute."""
    c = Cron.parse(expr)
    out, m = [], start
    while m < end:
        if c.matches(m):
            out.append(m)
        m += timedelta(minutes=1)
    return out


def test_every_five_minutes_fires_on_multiples_of_five() -> None:
    got = occurrences("*/5 * * * *", t(2026, 3, 1, 10, 2), 4)
    assert got == [t(2026, 3, 1, 10, 5), t(2026, 3, 1, 10, 10), t(2026, 3, 1, 10, 15),
                   t(2026, 3, 1, 10, 20)]  # fmt: skip


def test_next_after_is_strictly_after_an_occurrence() -> None:
    assert Cron.parse("*/5 * * * *").next_after(t(2026, 3, 1, 10, 5)) == t(2026, 3, 1, 10, 10)


def test_specific_hour_on_a_weekday() -> None:
    # 2026-03-02 is a Monday
    got = occurrences("30 2 * * mon", t(2026, 3, 1), 2)
    assert got == [t(2026, 3, 2, 2, 30), t(2026, 3, 9, 2, 30)]
    assert Cron.parse("30 2 * * 1").next_after(t(2026, 3, 1)) == t(2026, 3, 2, 2, 30)


def test_sunday_is_both_zero_and_seven() -> None:
    a, b = Cron.parse("0 0 * * 0"), Cron.parse("0 0 * * 7")
    assert a.next_after(t(2026, 3, 2)) == b.next_after(t(2026, 3, 2)) == t(2026, 3, 8)


def test_ranges_lists_and_steps() -> None:
    c = Cron.parse("0-10/5,50 9-17/4 * * *")
    assert c.minutes == {0, 5, 10, 50}
    assert c.hours == {9, 13, 17}
    assert Cron.parse("5/20 * * * *").minutes == {5, 25, 45}  # a start with a step: to the end
    assert Cron.parse("0 0 * * fri-sun").weekdays == {5, 6, 0}
    assert Cron.parse("0 0 * jan,jul *").months == {1, 7}


def test_both_day_fields_restricted_means_either() -> None:
    c = Cron.parse("0 0 13 * fri")
    assert c.matches(t(2026, 3, 13))  # a Friday the 13th
    assert c.matches(t(2026, 3, 6))  # a Friday
    assert c.matches(t(2026, 4, 13))  # a Monday the 13th
    assert not c.matches(t(2026, 3, 7))
    # one day field restricted: only that one counts
    assert not Cron.parse("0 0 13 * *").matches(t(2026, 3, 6))


def test_next_after_agrees_with_minute_by_minute_matching() -> None:
    start, end = t(2026, 2, 27, 22), t(2026, 3, 3, 2)
    for expr in ("*/7 1-3 * * *", "15,45 */6 28-31 * *", "0 0 1 * tue", "59 23 * * sat"):
        want = brute(expr, start, end)
        got = [x for x in occurrences(expr, start - timedelta(minutes=1), len(want) + 1)
               if x < end]  # fmt: skip
        assert got == want, expr


def test_latest_at_or_before_includes_the_instant_itself() -> None:
    c = Cron.parse("0 * * * *")
    assert c.latest_at_or_before(t(2026, 3, 1, 10, 0, 30)) == t(2026, 3, 1, 10)
    assert c.latest_at_or_before(t(2026, 3, 1, 9, 59)) == t(2026, 3, 1, 9)


def test_leap_day_schedule_skips_to_the_next_leap_year() -> None:
    c = Cron.parse("0 0 29 2 *")
    assert c.next_after(t(2026, 1, 1)) == t(2028, 2, 29)
    assert c.latest_at_or_before(t(2027, 6, 1)) == t(2024, 2, 29)


def test_shortcuts() -> None:
    assert Cron.parse("@hourly").next_after(t(2026, 3, 1, 10, 1)) == t(2026, 3, 1, 11)
    assert Cron.parse("@daily").next_after(t(2026, 3, 1, 10)) == t(2026, 3, 2)


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("60 * * * *", "minute field: 60 is outside 0-59"),
        ("* 24 * * *", "hour field: 24 is outside 0-23"),
        ("* * 0 * *", "day of month field: 0 is outside 1-31"),
        ("* * * 13 *", "month field: 13 is outside 1-12"),
        ("* * * * 8", "day of week field: 8 is outside 0-6"),
        ("*/0 * * * *", "minute field: step '0'"),
        ("10-5 * * * *", "minute field: range '10-5' runs backwards"),
        ("* * * * funday", "day of week field: 'funday' is not a number"),
        ("1,,2 * * * *", "minute field: empty item"),
        ("* * * *", "expected 5 fields"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(expr: str, words: str) -> None:
    with pytest.raises(CronError, match=words.replace("(", r"\(").replace("*", r"\*")):
        Cron.parse(expr)


def test_intervals_count_from_the_anchor() -> None:
    e = Every(900.0)
    assert e.latest_at_or_before(t(2026, 3, 1, 10, 14, 59)) == t(2026, 3, 1, 10)
    assert e.next_after(t(2026, 3, 1, 10)) == t(2026, 3, 1, 10, 15)
    shifted = Every(3600.0, t(2026, 1, 1, 0, 20))
    assert shifted.next_after(t(2026, 3, 1, 10, 30)) == t(2026, 3, 1, 11, 20)
