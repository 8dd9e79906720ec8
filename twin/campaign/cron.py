"""Cron expressions (the five-field subset) and fixed intervals: when a scheduled campaign is
due.

Written here rather than taken from a dependency because the subset is small and its rules
must be exact and tested: five fields ``minute hour day-of-month month day-of-week`` with
``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` or ``a-b/n``; month names
(``jan``..``dec``) and day names (``sun``..``sat``, and 7 for Sunday as well as 0); the
shortcuts ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. Times are UTC.
As in Vixie cron and POSIX, when both day fields are restricted a day matches if *either*
does (``0 0 1 * mon``: the first of the month and every Monday).

An occurrence is a whole minute; :meth:`Cron.next_after` and :meth:`Cron.latest_at_or_before`
walk days, not minutes, so finding the next run of a yearly schedule costs a few hundred
steps, not half a million.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SHORTCUTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SEARCH_DAYS = 366 * 8 + 2
"""Longest gap between two occurrences: ``0 0 29 2 *`` skips up to eight years (2096-2104)."""


class CronError(ValueError):
    """A cron expression that cannot be read; the message names the field and the value."""


def _number(text: str, index: int, names: tuple[str, ...] | None) -> int:
    name, lo, hi = FIELDS[index]
    low = text.lower()
    if names is not None and low in names:
        return names.index(low) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise CronError(f"{name} field: {text!r} is not a number")
    value = int(text)
    if index == 4 and value == 7:
        return 0  # Sunday, in either spelling
    if not lo <= value <= hi:
        raise CronError(f"{name} field: {value} is outside {lo}-{hi}")
    return value


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    """The values a field allows and whether it is a bare ``*`` (unrestricted)."""
    name, lo, hi = FIELDS[index]
    names = _MONTHS if index == 3 else _DAYS if index == 4 else None
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field: empty item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, index, names), _number(b, index, names)
            if index == 4 and end == 0 and start > 0:
                end = 7  # "5-7", "fri-sun": Friday to Sunday
            if end < start:
                raise CronError(f"{name} field: range {base!r} runs backwards")
        else:
            start = _number(base, index, names)
            end = hi if slash else start  # "5/15" means 5-59/15, as in Vixie cron
        values.update(v % 7 if index == 4 else v for v in range(start, end + 1, step))
    return frozenset(values), text == "*"


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression (UTC)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Read an expression; :class:`CronError` names the bad field otherwise. An
        expression that can never fire (``0 0 31 2 *``) is refused too."""
        spec = SHORTCUTS.get(text.strip().lower(), text)
        parts = spec.split()
        if len(parts) != 5:
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)} in {text!r}"
            )
        (mi, _), (h, _), (d, any_d), (mo, _), (w, any_w) = (
            _field(p, i) for i, p in enumerate(parts)
        )
        cron = cls(text.strip(), mi, h, d, mo, w, any_d, any_w)
        if cron.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise CronError(f"{text!r} never fires (no such day in any month it names)")
        return cron

    def day_matches(self, day: date) -> bool:
        """Month, then the day fields with cron's either-or rule when both are restricted."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, t: datetime) -> bool:
        """Whether the minute holding ``t`` (UTC) is an occurrence."""
        t = as_utc(t)
        return t.minute in self.minutes and t.hour in self.hours and self.day_matches(t.date())

    def next_after(self, t: datetime) -> datetime | None:
        """The first occurrence strictly after ``t``, or None if there is none in eight
        years (only a never-firing expression, refused by :meth:`parse`)."""
        t = as_utc(t).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = t.date()
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                first = day == t.date()
                for h in sorted(self.hours):
                    if first and h < t.hour:
                        continue
                    for m in sorted(self.minutes):
                        if first and h == t.hour and m < t.minute:
                            continue
                        return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
            day += timedelta(days=1)
        return None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last occurrence at or before ``t``, or None if there is none in eight years."""
        t = as_utc(t).replace(second=0, microsecond=0)
        day = t.date()
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                last = day == t.date()
                for h in sorted(self.hours, reverse=True):
                    if last and h > t.hour:
                        continue
                    for m in sorted(self.minutes, reverse=True):
                        if last and h == t.hour and m > t.minute:
                            continue
                        return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
            day -= timedelta(days=1)
        return None


@dataclass(frozen=True)
class Every:
    """A fixed interval: occurrences at ``anchor + k * seconds`` for every whole ``k``, so a
    restarted scheduler finds the same instants (``every: 15m`` fires at :00, :15, :30, :45
    with the default anchor, 1970-01-01T00:00Z)."""

    seconds: float
    anchor: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        k = math.floor((as_utc(t) - self.anchor).total_seconds() / self.seconds)
        return self.anchor + timedelta(seconds=k * self.seconds)

    def next_after(self, t: datetime) -> datetime | None:
        k = math.floor((as_utc(t) - self.anchor).total_seconds() / self.seconds) + 1
        return self.anchor + timedelta(seconds=k * self.seconds)


def as_utc(t: datetime) -> datetime:
    """``t`` as an aware UTC instant; a naive time is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


__all__ = ["FIELDS", "SHORTCUTS", "Cron", "CronError", "Every", "as_utc"]
