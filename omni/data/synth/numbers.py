"""Spoken-form English for numbers, ordinals, clock times and calendar dates.

The synthetic corpus writes every number as words, exactly as the TTS voices
say it, so the text an ASR model must produce is the text it hears. One
convention is used everywhere, with no alternatives:

- Cardinals: lower case, words separated by single spaces, no hyphens and no
  "and": ``21 -> "twenty one"``, ``105 -> "one hundred five"``,
  ``1005 -> "one thousand five"``, ``999_999 -> "nine hundred ninety nine
  thousand nine hundred ninety nine"``. Range 0..999_999.
- Ordinals: the last word of the cardinal becomes ordinal:
  ``21 -> "twenty first"``, ``100 -> "one hundredth"``, ``112 -> "one hundred
  twelfth"``. Range 1..999_999.
- Clock times: 24-hour input, 12-hour spoken output.
  Minute 0 says "o'clock", minutes 1..9 say "oh five", others the cardinal;
  then the part of the day: "in the morning" (00:01-11:59), "in the afternoon"
  (12:01-17:59), "in the evening" (18:00-23:59). 12:00 is "noon" and 00:00 is
  "midnight". ``(7, 30) -> "seven thirty in the morning"``,
  ``(19, 5) -> "seven oh five in the evening"``, ``(0, 15) -> "twelve fifteen
  in the morning"``. With ``part_of_day=False`` the phrase stops after the
  minutes (``"seven thirty"``); noon and midnight stay as they are.
- Dates: month name then ordinal day: ``(3, 3) -> "March third"``. February
  has 29 days for validation (a leap day is a valid date) but
  :data:`DAYS_IN_MONTH` lists 28, the common-year length the corpus teaches.

Every function raises ``ValueError`` with the argument name for a value out of
range or of the wrong type (``bool`` and ``float`` are refused too), so callers
catch one exception type.
"""

from __future__ import annotations

ONES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen",
)
"""Words for 0..19, indexed by value."""

TENS: tuple[str, ...] = (
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)
"""Words for the multiples of ten, indexed by the tens digit (0 and 1 unused)."""

MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)
"""Month names; month ``m`` (1..12) is ``MONTHS[m - 1]``."""

DAYS_IN_MONTH: tuple[int, ...] = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
"""Days per month in a common (non-leap) year, as the corpus states them."""

WEEKDAYS: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)
"""Weekday names, Monday first (ISO order)."""

MAX_NUMBER = 999_999
"""Largest value :func:`number_to_words` and :func:`ordinal_to_words` accept."""

_IRREGULAR_ORDINALS: dict[str, str] = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _check_int(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an ``int`` in ``[low, high]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _below_thousand(n: int) -> list[str]:
    """Words for ``1 <= n <= 999`` (never "zero"); e.g. 105 -> ["one", "hundred", "five"]."""
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(TENS[tens])
        if ones:
            words.append(ONES[ones])
    elif rest:
        words.append(ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Spell ``0 <= n <= 999_999`` as words: ``2024 -> "two thousand twenty four"``."""
    _check_int("n", n, 0, MAX_NUMBER)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    words: list[str] = []
    if thousands:
        words += _below_thousand(thousands) + ["thousand"]
    if rest:
        words += _below_thousand(rest)
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """Spell ``1 <= n <= 999_999`` as an ordinal: ``21 -> "twenty first"``."""
    _check_int("n", n, 1, MAX_NUMBER)
    *head, last = number_to_words(n).split(" ")
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def part_of_day(hour: int) -> str:
    """The phrase for a 24-hour ``hour``: "in the morning", "in the afternoon" or "in the evening"."""
    _check_int("hour", hour, 0, 23)
    if hour < 12:
        return "in the morning"
    if hour < 18:
        return "in the afternoon"
    return "in the evening"


def time_to_words(hour: int, minute: int = 0, *, part_of_day_words: bool = True) -> str:
    """Spell a 24-hour clock time the 12-hour spoken way.

    ``(7, 30) -> "seven thirty in the morning"``, ``(19, 5) -> "seven oh five in
    the evening"``, ``(15, 0) -> "three o'clock in the afternoon"``,
    ``(12, 0) -> "noon"``, ``(0, 0) -> "midnight"``. ``part_of_day_words=False``
    drops the trailing part of the day: ``(7, 30) -> "seven thirty"``.
    """
    _check_int("hour", hour, 0, 23)
    _check_int("minute", minute, 0, 59)
    if minute == 0 and hour in (0, 12):
        return "midnight" if hour == 0 else "noon"
    hour12 = hour % 12 or 12
    if minute == 0:
        minute_words = "o'clock"
    elif minute < 10:
        minute_words = "oh " + ONES[minute]
    else:
        minute_words = number_to_words(minute)
    spoken = f"{ONES[hour12]} {minute_words}"
    return f"{spoken} {part_of_day(hour)}" if part_of_day_words else spoken


def days_in_month(month: int, *, leap: bool = False) -> int:
    """Number of days in ``month`` (1..12); February has 29 when ``leap``."""
    _check_int("month", month, 1, 12)
    return 29 if (leap and month == 2) else DAYS_IN_MONTH[month - 1]


def date_to_words(month: int, day: int) -> str:
    """Spell a calendar date as month name and ordinal day: ``(3, 3) -> "March third"``.

    ``day`` is checked against the month's length, allowing February 29.
    """
    _check_int("month", month, 1, 12)
    _check_int("day", day, 1, days_in_month(month, leap=True))
    return f"{MONTHS[month - 1]} {ordinal_to_words(day)}"
