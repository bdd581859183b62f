"""The closed domain of the synthetic conversation corpus: tables and fact builders.

Everything the assistant can be asked lives here as data: slot vocabularies,
phrasing templates and fixed replies. A :class:`Fact` is one fact or intent
(``fact_id``) with every user phrasing of it, one correct reply, one wrong
reply of the same shape, and the short ``answer_key`` a correct reply must
contain. :mod:`omni.data.synth.text` turns facts into exchanges and splits.

Writing rules every table follows (tests check them on the whole corpus):
numbers as words (:mod:`omni.data.synth.numbers`), sentence case, ASCII
letters, spaces, apostrophes, commas and ``. ? !`` only, 3 to 14 words.
US spelling ("color").

Wrong replies are picked from same-shape replies that change one slot (another
room, another number, another colour), keeping only those that do not contain
the answer key as whole words; the pick is a fixed function of ``fact_id``.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from omni.data.synth.numbers import (
    DAYS_IN_MONTH,
    MONTHS,
    ONES,
    TENS,
    WEEKDAYS,
    date_to_words,
    number_to_words,
    ordinal_to_words,
    time_to_words,
)

CATEGORIES: tuple[str, ...] = ("home", "arithmetic", "time_date", "world", "numbers", "small_talk")
"""Every category, in the order :func:`omni.data.synth.text.all_exchanges` lists them."""

w = number_to_words  # short alias for the tables below


@dataclass(frozen=True)
class Fact:
    """One fact or intent with all its phrasings.

    Attributes:
        fact_id: stable id shared by every phrasing, e.g. ``"world:color:banana"``.
        category: one of :data:`CATEGORIES`.
        prompts: the user's phrasings, finished sentences, at least two.
        reply: the correct assistant reply.
        wrong_reply: a same-shape reply that is wrong (DPO "rejected").
        answer_key: short text every correct reply contains as whole words.
        statement: the fact as a plain declarative sentence, or ``None`` for
            commands and small talk.
    """

    fact_id: str
    category: str
    prompts: tuple[str, ...]
    reply: str
    wrong_reply: str
    answer_key: str
    statement: str | None = None


# --------------------------------------------------------------------------- text helpers


def sentence(text: str, end: str = ".") -> str:
    """Upper-case the first letter and add ``end`` unless the text already ends a sentence."""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + end


def normalize(text: str) -> str:
    """Lower-case, turn everything but letters and apostrophes into single spaces."""
    return " ".join(re.sub(r"[^a-z']+", " ", text.lower()).split())


_CARDINAL_WORDS = frozenset(ONES + TENS[2:] + ("hundred", "thousand", "oh"))
_ORDINAL_WORDS = frozenset(ordinal_to_words(n).split()[-1] for n in (*range(1, 100), 100, 1000))


def answer_matches(text: str, answer_key: str, context: str | None = None) -> bool:
    """True when ``answer_key`` occurs in ``text`` as whole words and whole numbers.

    Case and punctuation are ignored. A key that starts or ends with a number
    word must not continue a longer number in the text, so "twenty" is not found
    in "twenty one", "one" not in "twenty one", and "five minutes" not in
    "twenty five minutes"; "March third" is not found in "March twenty third".

    With ``context`` (the question and the reference reply, as text), every
    other number word of the reply must come from the context or the key: a
    reply that restates the question wrongly and states a wrong answer ("What
    comes after January fifth?" -> "The day after January sixth is January
    seventh.") holds the key in its premise, not as its answer, and is not
    counted.
    """
    key, words = normalize(answer_key).split(), normalize(text).split()
    if not key:
        raise ValueError("answer_key is empty")
    allowed = set(key) | set(normalize(context).split()) if context is not None else None
    number_start = key[0] in _CARDINAL_WORDS or key[0] in _ORDINAL_WORDS
    number_end = key[-1] in _CARDINAL_WORDS
    for i in range(len(words) - len(key) + 1):
        if words[i : i + len(key)] != key:
            continue
        before = words[i - 1] if i > 0 else ""
        after = words[i + len(key)] if i + len(key) < len(words) else ""
        if number_start and before in _CARDINAL_WORDS:
            continue
        if number_end and (after in _CARDINAL_WORDS or after in _ORDINAL_WORDS):
            continue
        if allowed is not None and any(_is_number_word(w) and w not in allowed
                                       for w in words[:i] + words[i + len(key):]):
            continue
        return True
    return False


def _is_number_word(word: str) -> bool:
    return word in _CARDINAL_WORDS or word in _ORDINAL_WORDS


def article(noun: str) -> str:
    """``"a dog"`` / ``"an owl"`` (vowel-letter rule; the vocabulary has no exceptions)."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _slug(value: str) -> str:
    return value.replace(" ", "_").replace("'", "")


def _pick_wrong(fact_id: str, reply: str, answer_key: str, candidates: Iterable[str]) -> str:
    """A candidate that differs from ``reply`` and lacks ``answer_key``, chosen by ``fact_id``."""
    valid = [c for c in dict.fromkeys(candidates) if c != reply and not answer_matches(c, answer_key)]
    if not valid:
        raise ValueError(f"no valid wrong reply for {fact_id}")
    return valid[zlib.crc32(fact_id.encode()) % len(valid)]


def _fact(
    category: str,
    fact_id: str,
    prompts: Iterable[str],
    reply: str,
    answer_key: str,
    wrong: Iterable[str],
    *,
    is_statement: bool = False,
) -> Fact:
    """Build a :class:`Fact`; ``wrong`` are candidate wrong replies (see :func:`_pick_wrong`)."""
    reply = sentence(reply)
    wrong_reply = _pick_wrong(fact_id, reply, answer_key, (sentence(c) for c in wrong))
    statement = reply if is_statement else None
    prompts = tuple(dict.fromkeys(prompts))
    return Fact(fact_id, category, prompts, reply, wrong_reply, answer_key, statement)


def _questions(templates: Sequence[str], **slots: str) -> list[str]:
    """Fill ``templates``; one without an end mark becomes a question ("?")."""
    return [sentence(t.format(**slots), "?") for t in templates]


# --------------------------------------------------------------------------- home

ROOMS = ("kitchen", "living room", "bedroom", "bathroom", "office", "hallway", "dining room",
         "garage", "basement", "guest room")
APPLIANCES = ("fan", "heater", "lamp", "radio")
MEDIA = ("television", "radio", "speaker")
COVERINGS = ("blinds", "curtains")
DOORS = ("front door", "back door", "garage door", "side door")
GENRES = ("jazz", "rock", "pop", "blues", "folk", "disco", "country", "reggae", "hip hop",
          "classical")
SHOPPING = ("milk", "bread", "eggs", "butter", "cheese", "apples", "bananas", "rice", "coffee",
            "tea", "sugar", "tomatoes", "potatoes", "carrots", "lemons", "onions")
PERCENTS = tuple(w(p) for p in range(10, 101, 10))
TEMPERATURES = tuple(w(t) for t in range(16, 27))
LEVELS = tuple(w(v) for v in range(1, 11))
DURATIONS = (
    ("one minute",) + tuple(f"{w(m)} minutes" for m in (*range(2, 21), 25, 30, 40, 45, 50, 60))
    + tuple(f"{w(s)} seconds" for s in (10, 15, 20, 30, 45))
    + ("one hour", "two hours", "three hours")
)
ALARM_TIMES = tuple(time_to_words(h, m) for h in range(24) for m in (0, 5, 15, 30, 45))
GERUND = {"open": "opening", "close": "closing", "lock": "locking", "unlock": "unlocking"}

COMMAND_WRAPPERS = ("{c}.", "Please {c}.", "{c}, please.", "Can you {c}?", "Could you {c}?")
"""Every home command core is said five ways; a core is lower case with no end mark."""


@dataclass(frozen=True)
class Intent:
    """A smart-home intent: command cores and a confirming reply over slot values.

    Every combination of slot values is one fact. Templates use the slot names
    in braces; ``{name_ing}`` is the gerund of a verb slot (``open -> opening``).
    """

    name: str
    cores: tuple[str, ...]
    reply: str
    answer: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]


HOME_INTENTS: tuple[Intent, ...] = (
    Intent("lights", ("turn {state} the {room} lights", "switch {state} the {room} lights",
                      "turn the {room} lights {state}", "switch the {room} lights {state}"),
           "Okay, turning the {room} lights {state}.", "{room} lights {state}",
           (("room", ROOMS), ("state", ("on", "off")))),
    Intent("brightness", ("set the {room} lights to {level} percent",
                          "dim the {room} lights to {level} percent"),
           "Okay, setting the {room} lights to {level} percent.", "{room} lights to {level} percent",
           (("room", ROOMS), ("level", PERCENTS))),
    Intent("thermostat", ("set the thermostat to {temp} degrees",
                          "set the temperature to {temp} degrees",
                          "change the temperature to {temp} degrees"),
           "Okay, setting the thermostat to {temp} degrees.", "thermostat to {temp} degrees",
           (("temp", TEMPERATURES),)),
    Intent("room_heating", ("set the {room} heating to {temp} degrees",
                            "turn the {room} heating to {temp} degrees"),
           "Okay, setting the {room} heating to {temp} degrees.", "{room} heating to {temp} degrees",
           (("room", ROOMS), ("temp", TEMPERATURES))),
    Intent("appliance", ("turn {state} the {room} {device}", "switch {state} the {room} {device}",
                         "turn the {room} {device} {state}"),
           "Okay, turning the {room} {device} {state}.", "{room} {device} {state}",
           (("room", ROOMS), ("device", APPLIANCES), ("state", ("on", "off")))),
    Intent("volume", ("set the {device} volume to {level}", "turn the {device} volume to {level}",
                      "change the {device} volume to {level}"),
           "Okay, setting the {device} volume to {level}.", "{device} volume to {level}",
           (("device", MEDIA), ("level", LEVELS))),
    Intent("volume_step", ("turn the {device} volume {direction}", "turn {direction} the {device} volume"),
           "Okay, turning the {device} volume {direction}.", "{device} volume {direction}",
           (("device", MEDIA), ("direction", ("up", "down")))),
    Intent("mute", ("mute the {device}", "turn off the sound on the {device}"),
           "Okay, muting the {device}.", "muting the {device}", (("device", MEDIA),)),
    Intent("blinds", ("{action} the {room} {covering}", "{action} the {covering} in the {room}"),
           "Okay, {action_ing} the {room} {covering}.", "{action_ing} the {room} {covering}",
           (("room", ROOMS), ("covering", COVERINGS), ("action", ("open", "close")))),
    Intent("lock", ("{action} the {door}", "{action} the {door} for me"),
           "Okay, {action_ing} the {door}.", "{action_ing} the {door}",
           (("door", DOORS), ("action", ("lock", "unlock")))),
    Intent("timer", ("set a timer for {duration}", "start a timer for {duration}",
                     "start a countdown for {duration}"),
           "Okay, setting a timer for {duration}.", "timer for {duration}",
           (("duration", DURATIONS),)),
    Intent("alarm", ("set an alarm for {time}", "wake me up at {time}"),
           "Okay, your alarm is set for {time}.", "{time}", (("time", ALARM_TIMES),)),
    Intent("music", ("play some {genre}", "put on some {genre}", "play some {genre} music"),
           "Okay, playing some {genre}.", "playing some {genre}", (("genre", GENRES),)),
    Intent("music_room", ("play some {genre} in the {room}", "put on some {genre} in the {room}"),
           "Okay, playing some {genre} in the {room}.", "{genre} in the {room}",
           (("genre", GENRES), ("room", ROOMS))),
    Intent("shopping", ("add {item} to the shopping list", "put {item} on the shopping list"),
           "Okay, I added {item} to your shopping list.", "added {item}", (("item", SHOPPING),)),
)


def _fill(template: str, values: dict[str, str]) -> str:
    extra = {f"{k}_ing": GERUND[v] for k, v in values.items() if v in GERUND}
    return template.format(**values, **extra)


def _intent_facts(intent: Intent) -> list[Fact]:
    """One fact per slot combination; wrong replies change exactly one slot."""
    names = [name for name, _ in intent.slots]
    facts = []
    for combo in itertools.product(*(values for _, values in intent.slots)):
        values = dict(zip(names, combo, strict=True))
        prompts = [
            sentence(wrapper.format(c=_fill(core, values)))
            for core in intent.cores
            for wrapper in COMMAND_WRAPPERS
        ]
        wrong = [
            _fill(intent.reply, {**values, name: other})
            for name, options in intent.slots
            for other in options
            if other != values[name]
        ]
        fact_id = ":".join(["home", intent.name, *(_slug(v) for v in combo)])
        answer = _fill(intent.answer, values)
        facts.append(_fact("home", fact_id, prompts, _fill(intent.reply, values), answer, wrong))
    return facts


def home_facts() -> list[Fact]:
    """Smart-home commands: every intent of :data:`HOME_INTENTS` over all its slot values."""
    return [fact for intent in HOME_INTENTS for fact in _intent_facts(intent)]


# --------------------------------------------------------------------------- arithmetic

ARITHMETIC: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("add", ("what is {a} plus {b}", "how much is {a} plus {b}", "what is the sum of {a} and {b}",
             "what do you get if you add {a} and {b}", "can you add {a} and {b} for me"),
     "{a} plus {b} is {c}"),
    ("subtract", ("what is {a} minus {b}", "how much is {a} minus {b}",
                  "what is {b} taken away from {a}", "what do you get if you take {b} from {a}",
                  "what is {a} take away {b}"),
     "{a} minus {b} is {c}"),
    ("multiply", ("what is {a} times {b}", "how much is {a} times {b}",
                  "what is {a} multiplied by {b}", "what do you get if you multiply {a} by {b}"),
     "{a} times {b} is {c}"),
)
"""(operation, question templates, reply template) over operands ``a``, ``b`` and result ``c``."""


def _operand_pairs(operation: str) -> list[tuple[int, int, int]]:
    """(a, b, result) for each operation; results never equal an operand, so the key is unambiguous."""
    if operation == "add":
        return [(a, b, a + b) for a in range(1, 11) for b in range(1, 11)]
    if operation == "subtract":
        return [(a, b, a - b) for a in range(2, 16) for b in range(1, a) if a - b != b]
    return [(a, b, a * b) for a in range(2, 11) for b in range(2, 11) if a * b <= 20]


def arithmetic_facts() -> list[Fact]:
    """Small sums (operands 1..10), differences (up to fifteen) and products (up to twenty)."""
    facts = []
    for operation, templates, reply in ARITHMETIC:
        for a, b, c in _operand_pairs(operation):
            slots = {"a": w(a), "b": w(b)}
            wrong = [reply.format(**slots, c=w(v)) for v in (c + 1, c - 1, c + 2, c - 2) if v >= 0]
            facts.append(_fact(
                "arithmetic", f"arithmetic:{operation}:{a}:{b}", _questions(templates, **slots),
                reply.format(**slots, c=w(c)), w(c), wrong, is_statement=True,
            ))
    return facts


# --------------------------------------------------------------------------- time and date

SEASONS = ("spring", "summer", "autumn", "winter")
NEIGHBOUR_QUESTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("day", "after"): ("what day comes after {x}", "what day is after {x}", "which day follows {x}",
                       "if today is {x}, what day is tomorrow"),
    ("day", "before"): ("what day comes before {x}", "what day is before {x}",
                        "which day is just before {x}", "if today is {x}, what day was yesterday"),
    ("month", "after"): ("what month comes after {x}", "which month follows {x}",
                         "what month is after {x}"),
    ("month", "before"): ("what month comes before {x}", "which month is before {x}",
                          "what month is just before {x}"),
    ("season", "after"): ("what season comes after {x}", "which season follows {x}",
                          "what is the season after {x}"),
}
MONTH_ORDINAL_QUESTIONS = ("what is the {o} month of the year", "which month is the {o} month",
                           "what month comes {o} in the year")
MONTH_LENGTH_QUESTIONS = ("how many days are in {m}", "how many days does {m} have",
                          "how many days long is {m}")
DATE_QUESTIONS = ("what date comes after {d}", "what is the day after {d}",
                  "if today is {d}, what is the date tomorrow")
COUNT_FACTS: tuple[tuple[str, str, int, tuple[int, ...]], ...] = (
    ("days", "a week", 7, (5, 6, 8)),
    ("months", "a year", 12, (10, 11, 13)),
    ("hours", "a day", 24, (12, 20, 25)),
    ("minutes", "an hour", 60, (30, 50, 100)),
    ("seconds", "a minute", 60, (30, 50, 100)),
    ("days", "a weekend", 2, (1, 3, 4)),
    ("weeks", "a year", 52, (12, 50, 54)),
    ("days", "a year", 365, (300, 360, 366)),
)
"""(unit, span, count, wrong counts): "How many days are in a week?"."""
COUNT_QUESTIONS = ("how many {unit} are in {span}", "how many {unit} does {span} have",
                   "{span} has how many {unit}")


def _neighbour_facts(kind: str, names: Sequence[str]) -> list[Fact]:
    """"What day comes after Monday?" style facts over a cyclic list of names."""
    facts = []
    for direction in ("after", "before"):
        templates = NEIGHBOUR_QUESTIONS.get((kind, direction))
        if templates is None:
            continue
        step = 1 if direction == "after" else -1
        for i, x in enumerate(names):
            y = names[(i + step) % len(names)]
            wrong = [f"{z} comes {direction} {x}" for z in names if z not in (x, y)]
            facts.append(_fact(
                "time_date", f"time_date:{kind}_{direction}:{x.lower()}",
                _questions(templates, x=x), f"{y} comes {direction} {x}", y, wrong,
                is_statement=True,
            ))
    return facts


def _calendar_facts() -> list[Fact]:
    """Month by ordinal, month lengths and counts of time units."""
    facts = []
    for i, month in enumerate(MONTHS):
        o = ordinal_to_words(i + 1)
        prompts = _questions(MONTH_ORDINAL_QUESTIONS, o=o)
        prompts += {0: ["What is the first month of the year?"],
                    11: ["What is the last month of the year?"]}.get(i, [])
        wrong = [f"{m} is the {o} month of the year" for m in MONTHS if m != month]
        facts.append(_fact("time_date", f"time_date:month_ordinal:{i + 1}", prompts,
                           f"{month} is the {o} month of the year", month, wrong, is_statement=True))
    for i, month in enumerate(MONTHS):
        n = DAYS_IN_MONTH[i]
        wrong = [f"{month} has {w(v)} days" for v in (28, 29, 30, 31) if v != n]
        facts.append(_fact("time_date", f"time_date:month_length:{i + 1}",
                           _questions(MONTH_LENGTH_QUESTIONS, m=month), f"{month} has {w(n)} days",
                           f"{w(n)} days", wrong, is_statement=True))
    for unit, span, n, wrong_counts in COUNT_FACTS:
        wrong = [f"{span} has {w(v)} {unit}" for v in wrong_counts]
        facts.append(_fact("time_date", f"time_date:count:{unit}:{_slug(span)}",
                           _questions(COUNT_QUESTIONS, unit=unit, span=span),
                           f"{span} has {w(n)} {unit}", f"{w(n)} {unit}", wrong, is_statement=True))
    weekend = ("what days are the weekend", "which days make up the weekend",
               "what are the two days of the weekend")
    facts.append(_fact("time_date", "time_date:weekend", _questions(weekend),
                       "The weekend is Saturday and Sunday", "Saturday and Sunday",
                       ["The weekend is Friday and Saturday", "The weekend is Sunday and Monday"],
                       is_statement=True))
    return facts


def _date_facts() -> list[Fact]:
    """"What date comes after March third?" for every day of a common year."""
    days = [(m, d) for m in range(1, 13) for d in range(1, DAYS_IN_MONTH[m - 1] + 1)]
    facts = []
    for i, (m, d) in enumerate(days):
        today, tomorrow = date_to_words(m, d), date_to_words(*days[(i + 1) % len(days)])
        others = [date_to_words(*days[(i + k) % len(days)]) for k in (2, -1, 3)]
        wrong = [f"The day after {today} is {o}" for o in others]
        facts.append(_fact("time_date", f"time_date:date_after:{m}:{d}",
                           _questions(DATE_QUESTIONS, d=today),
                           f"The day after {today} is {tomorrow}", tomorrow, wrong,
                           is_statement=True))
    return facts


def time_date_facts() -> list[Fact]:
    """Weekdays, months and seasons in order, calendar counts and next dates."""
    return (_neighbour_facts("day", WEEKDAYS) + _neighbour_facts("month", MONTHS)
            + _neighbour_facts("season", SEASONS) + _calendar_facts() + _date_facts())


# --------------------------------------------------------------------------- world

COLORS = ("red", "yellow", "green", "blue", "purple", "white", "black", "orange", "pink", "brown")
COLOR_FACTS = (("a banana", "yellow"), ("a lemon", "yellow"), ("a strawberry", "red"),
               ("a tomato", "red"), ("a cherry", "red"), ("a grape", "purple"), ("a lime", "green"),
               ("grass", "green"), ("the sky", "blue"), ("snow", "white"), ("milk", "white"),
               ("coal", "black"), ("a carrot", "orange"), ("chocolate", "brown"))
COLOR_QUESTIONS = ("what color is {x}", "what is the color of {x}", "tell me the color of {x}.",
                   "which color is {x}")
SOUNDS = (("dog", "barks"), ("cat", "meows"), ("cow", "moos"), ("duck", "quacks"), ("lion", "roars"),
          ("horse", "neighs"), ("pig", "oinks"), ("owl", "hoots"), ("bee", "buzzes"),
          ("snake", "hisses"), ("frog", "croaks"), ("sheep", "bleats"))
SOUND_QUESTIONS = ("what sound does {x} make", "what noise does {x} make",
                   "what does {x} say", "which sound does {x} make")
OPPOSITES = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down"),
             ("wet", "dry"), ("full", "empty"), ("loud", "quiet"), ("early", "late"),
             ("day", "night"), ("hard", "soft"))
OPPOSITE_QUESTIONS = ("what is the opposite of {x}", "what's the opposite of {x}",
                      "tell me the opposite of {x}.", "what word is the opposite of {x}")
KINDS = (("carrot", "vegetable", "fruit"), ("potato", "vegetable", "fruit"),
         ("onion", "vegetable", "fruit"), ("apple", "fruit", "vegetable"),
         ("pear", "fruit", "vegetable"), ("dog", "animal", "plant"), ("horse", "animal", "plant"),
         ("rose", "flower", "tree"), ("tulip", "flower", "tree"), ("oak", "tree", "flower"),
         ("piano", "instrument", "tool"), ("guitar", "instrument", "tool"),
         ("hammer", "tool", "instrument"), ("bus", "vehicle", "building"))
"""(thing, its kind, the other kind offered in the either-or question)."""
KIND_QUESTIONS = ("what kind of thing is {x}", "what type of thing is {x}",
                  "is {x} {either} or {other}", "tell me what {x} is.")
LEGS = (("dog", 4), ("bird", 2), ("spider", 8), ("ant", 6), ("chicken", 2), ("cat", 4))
LEG_QUESTIONS = ("how many legs does {x} have", "how many legs has {x} got",
                 "tell me how many legs {x} has.", "{x} has how many legs")


def world_facts() -> list[Fact]:
    """Colours, animal sounds, opposites, kinds of things and leg counts; four phrasings each."""
    facts = []
    for x, color in COLOR_FACTS:
        wrong = [f"{x} is {c}" for c in COLORS if c != color]
        facts.append(_fact("world", f"world:color:{_slug(x.split()[-1])}",
                           _questions(COLOR_QUESTIONS, x=x), f"{x} is {color}", color, wrong,
                           is_statement=True))
    for animal, sound in SOUNDS:
        x = article(animal)
        wrong = [f"{x} {s}" for _, s in SOUNDS if s != sound]
        facts.append(_fact("world", f"world:sound:{animal}", _questions(SOUND_QUESTIONS, x=x),
                           f"{x} {sound}", sound, wrong, is_statement=True))
    words = [word for pair in OPPOSITES for word in pair]
    for a, b in OPPOSITES:
        for x, y in ((a, b), (b, a)):
            wrong = [f"the opposite of {x} is {z}" for z in words if z not in (x, y)]
            facts.append(_fact("world", f"world:opposite:{x}", _questions(OPPOSITE_QUESTIONS, x=x),
                               f"the opposite of {x} is {y}", y, wrong, is_statement=True))
    for thing, kind, other in KINDS:
        x = article(thing)
        either, other_ = sorted([article(kind), article(other)])
        prompts = _questions(KIND_QUESTIONS, x=x, either=either, other=other_)
        facts.append(_fact("world", f"world:kind:{thing}", prompts, f"{x} is {article(kind)}",
                           kind, [f"{x} is {article(other)}"], is_statement=True))
    for animal, n in LEGS:
        x = article(animal)
        wrong = [f"{x} has {w(v)} legs" for v in (2, 4, 6, 8) if v != n]
        facts.append(_fact("world", f"world:legs:{animal}", _questions(LEG_QUESTIONS, x=x),
                           f"{x} has {w(n)} legs", f"{w(n)} legs", wrong, is_statement=True))
    return facts


# --------------------------------------------------------------------------- numbers

NUMBER_QUESTIONS: dict[str, tuple[str, ...]] = {
    "after": ("what number comes after {x}", "what comes after {x}", "which number is after {x}"),
    "before": ("what number comes before {x}", "what comes before {x}",
               "which number is before {x}"),
    "between": ("what number is between {x} and {y}", "which number comes between {x} and {y}",
                "what number lies between {x} and {y}"),
    "count_up": ("count from {x} to {y}.", "count up from {x} to {y}.", "can you count from {x} to {y}"),
    "count_down": ("count down from {x} to {y}.", "count backwards from {x} to {y}.",
                   "can you count down from {x} to {y}"),
}
COMPARE_QUESTIONS = ("which is {adj}, {x} or {y}", "which number is {adj}, {x} or {y}")


def _neighbour_number_facts() -> list[Fact]:
    """Successor (0..99), predecessor (1..100) and the number between two (0..20)."""
    facts = []
    for direction, step, numbers in (("after", 1, range(0, 100)), ("before", -1, range(1, 101))):
        for n in numbers:
            m, x = n + step, w(n)
            wrong = [f"{w(v)} comes {direction} {x}" for v in (m + step, n - step, m + 10 * step)
                     if 0 <= v <= 100]
            facts.append(_fact("numbers", f"numbers:{direction}:{n}",
                               _questions(NUMBER_QUESTIONS[direction], x=x),
                               f"{w(m)} comes {direction} {x}", w(m), wrong, is_statement=True))
    for n in range(0, 19):
        x, y = w(n), w(n + 2)
        wrong = [f"{w(v)} is between {x} and {y}" for v in (n + 3, n, n + 2, n + 4)]
        facts.append(_fact("numbers", f"numbers:between:{n}:{n + 2}",
                           _questions(NUMBER_QUESTIONS["between"], x=x, y=y),
                           f"{w(n + 1)} is between {x} and {y}", w(n + 1), wrong, is_statement=True))
    return facts


def _count_facts() -> list[Fact]:
    """Counting three or four numbers up or down, within one to twenty."""
    facts = []
    for length, start in itertools.product((3, 4), range(1, 22)):
        up = list(range(start, start + length))
        if up[-1] > 20:
            continue
        for direction, seq in (("count_up", up), ("count_down", up[::-1])):
            answer = ", ".join(w(v) for v in seq)
            skipped = seq[:2] + [v + (seq[1] - seq[0]) for v in seq[2:]]
            shifted = [v + 1 for v in seq]
            wrong = [", ".join(w(v) for v in bad) for bad in (skipped, shifted)]
            facts.append(_fact("numbers", f"numbers:{direction}:{seq[0]}:{seq[-1]}",
                               _questions(NUMBER_QUESTIONS[direction], x=w(seq[0]), y=w(seq[-1])),
                               answer, answer, wrong))
    return facts


def _compare_facts() -> list[Fact]:
    """"Which is bigger, three or seven?" for pairs in 1..10, both orders as phrasings."""
    facts = []
    for a, b in itertools.combinations(range(1, 11), 2):
        for adj, pick, other in (("bigger", b, a), ("smaller", a, b)):
            prompts = [p for x, y in ((a, b), (b, a))
                       for p in _questions(COMPARE_QUESTIONS, adj=adj, x=w(x), y=w(y))]
            facts.append(_fact("numbers", f"numbers:{adj}:{a}:{b}", prompts,
                               f"the {adj} number is {w(pick)}", w(pick),
                               [f"the {adj} number is {w(other)}"]))
    return facts


def numbers_facts() -> list[Fact]:
    """Number order: after, before, between, counting and comparing."""
    return _neighbour_number_facts() + _count_facts() + _compare_facts()


# --------------------------------------------------------------------------- small talk

ASSISTANT_NAME = "Omni"
SMALL_TALK: tuple[tuple[str, tuple[str, ...], str, str, str], ...] = (
    ("greeting", ("Hello there, Omni.", "Hi there, Omni.", "Hey there, Omni.", "Hello to you, Omni."),
     "Hello, how can I help you today?", "hello", "Goodbye, have a nice day!"),
    ("good_morning", ("Good morning, Omni.", "Good morning to you.", "A very good morning to you."),
     "Good morning, how can I help you?", "good morning", "Good evening, how can I help you?"),
    ("good_evening", ("Good evening, Omni.", "Good evening to you.", "A very good evening to you."),
     "Good evening, how can I help you?", "good evening", "Good morning, how can I help you?"),
    ("thanks", ("Thank you, Omni.", "Thanks a lot.", "Thank you very much.", "Thanks for your help."),
     "You are very welcome!", "welcome", "Hello, how can I help you today?"),
    ("how_are_you", ("How are you today?", "How are you doing?", "How is it going, Omni?",
                     "Are you doing well?"),
     "I am doing well, thank you!", "doing well", "I am sorry to hear that."),
    ("name", ("What is your name?", "What's your name?", "What should I call you?",
              "Who are you, assistant?"),
     f"My name is {ASSISTANT_NAME}.", ASSISTANT_NAME, "My name is Max."),
    ("goodbye", ("Goodbye for now, Omni.", "See you later, Omni.", "Bye bye, Omni.",
                 "I have to go now."),
     "Goodbye, have a nice day!", "goodbye", "Hello, how can I help you today?"),
    ("good_night", ("Good night, Omni.", "Good night to you.", "I am going to bed."),
     "Good night, sleep well!", "good night", "Good morning, how can I help you?"),
    ("abilities", ("What can you do?", "How can you help me?", "What are you able to do?",
                   "What are you good at?"),
     "I can control your home and answer simple questions.", "control your home",
     "I can only sing songs for you."),
    ("robot", ("Are you a robot?", "Are you a real person?", "Are you a human?"),
     "I am a computer assistant, not a person.", "computer assistant",
     "I am a real person, just like you."),
    ("hearing", ("Can you hear me?", "Are you listening to me?", "Can you hear my voice?"),
     "Yes, I can hear you.", "yes", "No, I cannot hear you."),
    ("apology", ("I am sorry, Omni.", "Sorry about that.", "I apologize for that."),
     "No problem at all.", "no problem", "That is a big problem."),
    ("happy", ("I am very happy today.", "I feel great today.", "I am in a good mood."),
     "That is great to hear!", "great to hear", "That is sad to hear."),
    ("sad", ("I am sad today.", "I feel a bit sad.", "I am not feeling good."),
     "I am sorry to hear that.", "sorry to hear", "That is great to hear!"),
)
"""(intent, prompts, reply, answer key, wrong reply); the assistant's name is Omni."""


def small_talk_facts() -> list[Fact]:
    """Greetings, thanks, how are you, name and other fixed friendly replies."""
    return [_fact("small_talk", f"small_talk:{intent}", prompts, reply, key, [wrong])
            for intent, prompts, reply, key, wrong in SMALL_TALK]


CATEGORY_BUILDERS = {
    "home": home_facts,
    "arithmetic": arithmetic_facts,
    "time_date": time_date_facts,
    "world": world_facts,
    "numbers": numbers_facts,
    "small_talk": small_talk_facts,
}
"""Category name -> function returning its facts in a fixed order."""
