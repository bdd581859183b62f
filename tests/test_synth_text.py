"""Tests for the synthetic corpus text: spoken numbers, the closed domain and its splits.

Correctness of arithmetic and number-order answers is checked by parsing the
number words back with a small parser written here, independent of
:mod:`omni.data.synth.numbers`.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections import Counter, defaultdict

import pytest

from omni.data.synth.numbers import (
    date_to_words,
    number_to_words,
    ordinal_to_words,
    time_to_words,
)
from omni.data.synth.text import (
    CATEGORIES,
    DEFAULT_WEIGHTS,
    Exchange,
    all_exchanges,
    all_facts,
    answer_matches,
    fact_sentences,
    make_documents,
    sample_exchanges,
    split_by_prompt,
    statements,
    vocabulary,
)

# --------------------------------------------------------------------------- an independent parser

_UNITS = {word: i for i, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split()
)}
_TENS = {word: 10 * i for i, word in
         enumerate("- - twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}


def parse_number(text: str) -> int:
    """'one hundred five' -> 105, 'twenty one thousand' -> 21000; raises on any other word."""
    total, current = 0, 0
    for word in text.lower().split():
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current *= 100
        elif word == "thousand":
            total, current = total + current * 1000, 0
        else:
            raise ValueError(f"not a number word: {word!r}")
    return total + current


def by_category(category: str) -> list[Exchange]:
    return [ex for ex in all_exchanges() if ex.category == category]


# --------------------------------------------------------------------------- numbers.py


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (1, "one"), (7, "seven"), (10, "ten"), (11, "eleven"), (12, "twelve"),
    (13, "thirteen"), (14, "fourteen"), (15, "fifteen"), (16, "sixteen"), (17, "seventeen"),
    (18, "eighteen"), (19, "nineteen"), (20, "twenty"), (21, "twenty one"), (40, "forty"),
    (99, "ninety nine"), (100, "one hundred"), (101, "one hundred one"),
    (110, "one hundred ten"), (115, "one hundred fifteen"), (999, "nine hundred ninety nine"),
    (1000, "one thousand"), (1001, "one thousand one"), (1010, "one thousand ten"),
    (2024, "two thousand twenty four"), (12_345, "twelve thousand three hundred forty five"),
    (100_000, "one hundred thousand"),
    (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_number_words_round_trip() -> None:
    for n in [*range(0, 1100), *range(1100, 1_000_000, 37), 999_999]:
        assert parse_number(number_to_words(n)) == n, n


@pytest.mark.parametrize("n, words", [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"),
    (9, "ninth"), (10, "tenth"), (11, "eleventh"), (12, "twelfth"), (13, "thirteenth"),
    (20, "twentieth"), (21, "twenty first"), (22, "twenty second"), (23, "twenty third"),
    (30, "thirtieth"), (31, "thirty first"), (99, "ninety ninth"), (100, "one hundredth"),
    (101, "one hundred first"), (112, "one hundred twelfth"), (1000, "one thousandth"),
])
def test_ordinal_to_words(n: int, words: str) -> None:
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize("hour, minute, words", [
    (0, 0, "midnight"), (12, 0, "noon"), (7, 30, "seven thirty in the morning"),
    (7, 5, "seven oh five in the morning"), (19, 5, "seven oh five in the evening"),
    (15, 0, "three o'clock in the afternoon"), (0, 15, "twelve fifteen in the morning"),
    (12, 45, "twelve forty five in the afternoon"), (17, 59, "five fifty nine in the afternoon"),
    (18, 0, "six o'clock in the evening"), (23, 10, "eleven ten in the evening"),
    (11, 1, "eleven oh one in the morning"),
])
def test_time_to_words(hour: int, minute: int, words: str) -> None:
    assert time_to_words(hour, minute) == words


def test_time_without_part_of_day() -> None:
    assert time_to_words(7, 30, part_of_day_words=False) == "seven thirty"
    assert time_to_words(19, 5, part_of_day_words=False) == "seven oh five"
    assert time_to_words(12, 0, part_of_day_words=False) == "noon"


@pytest.mark.parametrize("month, day, words", [
    (3, 3, "March third"), (1, 1, "January first"), (12, 31, "December thirty first"),
    (2, 29, "February twenty ninth"), (7, 22, "July twenty second"),
])
def test_date_to_words(month: int, day: int, words: str) -> None:
    assert date_to_words(month, day) == words


@pytest.mark.parametrize("call", [
    lambda: number_to_words(-1), lambda: number_to_words(1_000_000), lambda: number_to_words(3.0),
    lambda: number_to_words(True), lambda: number_to_words("5"), lambda: ordinal_to_words(0),
    lambda: time_to_words(24, 0), lambda: time_to_words(-1, 0), lambda: time_to_words(7, 60),
    lambda: time_to_words(7.5, 0), lambda: date_to_words(2, 30), lambda: date_to_words(4, 31),
    lambda: date_to_words(13, 1), lambda: date_to_words(0, 1), lambda: date_to_words(1, 0),
])
def test_invalid_arguments_raise(call) -> None:
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- answer matching


@pytest.mark.parametrize("text, key, expected", [
    ("Two plus three is five.", "five", True),
    ("Okay, setting a timer for twenty five minutes.", "five minutes", False),
    ("Twenty one comes after nineteen.", "twenty", False),
    ("Twenty comes before twenty one.", "twenty", True),
    ("Twenty one comes after twenty.", "one", False),
    ("The day after March second is March twenty third.", "March third", False),
    ("OKAY, TURNING THE KITCHEN LIGHTS ON!", "kitchen lights on", True),
    ("Okay, unlocking the front door.", "locking the front door", False),
    ("My name is Omni.", "omni", True),
])
def test_answer_matches(text: str, key: str, expected: bool) -> None:
    assert answer_matches(text, key) is expected


# --------------------------------------------------------------------------- the whole space

SENTENCE = re.compile(r"[A-Z][A-Za-z' ,]*[A-Za-z][.?!]")


def test_size_and_no_duplicate_prompts() -> None:
    exchanges = all_exchanges()
    prompts = [ex.prompt for ex in exchanges]
    assert len(prompts) == len(set(prompts))
    assert 3000 <= len(prompts) <= 20_000
    counts = Counter(ex.category for ex in exchanges)
    assert set(counts) == set(CATEGORIES)
    assert counts["home"] > len(prompts) / 2  # dominated by home commands
    assert all(counts[c] >= 40 for c in CATEGORIES)


def test_character_set_and_length() -> None:
    texts = [t for ex in all_exchanges() for t in (ex.prompt, ex.reply, ex.wrong_reply)]
    texts += list(fact_sentences().values())
    for text in texts:
        assert text.isascii() and SENTENCE.fullmatch(text), text
        assert "  " not in text and not re.search(r"\d", text), text
        assert 3 <= len(text.split()) <= 14, text


def test_answer_key_in_reply_not_in_wrong_reply() -> None:
    for ex in all_exchanges():
        assert ex.answer_key.lower() in ex.reply.lower(), ex
        assert answer_matches(ex.reply, ex.answer_key), ex
        assert not answer_matches(ex.wrong_reply, ex.answer_key), ex
        assert ex.wrong_reply != ex.reply


def test_phrasings_share_fact() -> None:
    groups: dict[str, list[Exchange]] = defaultdict(list)
    for ex in all_exchanges():
        groups[ex.fact_id].append(ex)
    for fact_id, group in groups.items():
        assert len({(ex.reply, ex.answer_key, ex.category) for ex in group}) == 1, fact_id
        minimum = 3 if group[0].category in ("world", "time_date", "small_talk") else 2
        assert len(group) >= minimum, fact_id
    assert len([f for f in all_facts() if f.category == "world"]) >= 40


ARITH = re.compile(r"(.+) (plus|minus|times) (.+) is (.+)\.")
OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


def test_arithmetic_is_correct_and_wrong_replies_are_wrong() -> None:
    exchanges = by_category("arithmetic")
    assert len(exchanges) > 500
    for ex in exchanges:
        a, op, b, c = ARITH.fullmatch(ex.reply).groups()
        a, b = parse_number(a), parse_number(b)
        assert parse_number(c) == OPS[op](a, b) <= 20, ex
        assert parse_number(ex.answer_key) == OPS[op](a, b)
        assert ex.fact_id.split(":")[2:] == [str(a), str(b)]
        assert answer_matches(ex.prompt, number_to_words(a)) and answer_matches(ex.prompt, number_to_words(b))
        wa, wop, wb, wc = ARITH.fullmatch(ex.wrong_reply).groups()
        assert (wa.lower(), wop, wb) == (number_to_words(a), op, number_to_words(b))
        assert parse_number(wc) != OPS[op](a, b), ex


def _number_reply_value(reply: str) -> tuple[str, list[int]]:
    """('after', [answer, n]) for 'X comes after N.', and so on for the other shapes."""
    text = reply.lower().rstrip(".")
    for pattern, kind in ((r"(.+) comes (after|before) (.+)", "order"),
                          (r"(.+) is between (.+) and (.+)", "between"),
                          (r"the (bigger|smaller) number is (.+)", "compare")):
        match = re.fullmatch(pattern, text)
        if match:
            groups = match.groups()
            if kind == "order":
                return groups[1], [parse_number(groups[0]), parse_number(groups[2])]
            if kind == "between":
                return kind, [parse_number(g) for g in groups]
            return groups[0], [parse_number(groups[1])]
    return "count", [parse_number(part) for part in text.split(", ")]


def _number_reply_correct(prompt: str, reply: str) -> bool:
    kind, values = _number_reply_value(reply)
    if kind == "after":
        return values[0] == values[1] + 1
    if kind == "before":
        return values[0] == values[1] - 1
    if kind == "between":
        return values[1] < values[0] < values[2] and values[2] - values[1] == 2
    if kind in ("bigger", "smaller"):
        x, y = (parse_number(v) for v in re.search(r", (.+) or (.+)\?", prompt).groups())
        return values[0] == (max(x, y) if kind == "bigger" else min(x, y))
    x, y = (parse_number(v) for v in re.search(r"from (.+) to (.+)\.|from (.+) to (.+)\?", prompt)
            .groups() if v)
    step = 1 if y > x else -1
    return values == list(range(x, y + step, step))


def test_number_answers_are_correct_and_wrong_replies_are_wrong() -> None:
    for ex in by_category("numbers"):
        assert _number_reply_correct(ex.prompt, ex.reply), ex
        assert not _number_reply_correct(ex.prompt, ex.wrong_reply), ex


def test_time_date_answers() -> None:
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    replies = {ex.prompt: ex.reply for ex in by_category("time_date")}
    for i, day in enumerate(days):
        assert replies[f"What day comes after {day}?"] == f"{days[(i + 1) % 7]} comes after {day}."
        assert replies[f"What day comes before {day}?"] == f"{days[i - 1]} comes before {day}."
    for month in range(1, 13):
        name = calendar.month_name[month]
        n = calendar.monthrange(2023, month)[1]
        assert parse_number(replies[f"How many days are in {name}?"].split(" has ")[1][:-6]) == n
        assert replies[f"What is the {ordinal_to_words(month)} month of the year?"].startswith(name)
    assert replies["What date comes after February twenty eighth?"].endswith("is March first.")
    assert replies["What date comes after December thirty first?"].endswith("is January first.")
    day = datetime.date(2023, 1, 1)
    while day.year == 2023:
        nxt = day + datetime.timedelta(days=1)
        key = f"What date comes after {date_to_words(day.month, day.day)}?"
        assert replies[key].endswith(f" is {date_to_words(nxt.month, nxt.day)}."), key
        day = nxt


def test_exchange_rejects_unknown_category() -> None:
    with pytest.raises(ValueError, match="category"):
        Exchange("Hi there, Omni.", "Hello.", "Bye.", "weather", "hello", "x")


def test_small_talk_name_and_world_examples() -> None:
    replies = {ex.prompt: ex for ex in all_exchanges()}
    assert replies["What is your name?"].reply == "My name is Omni."
    assert replies["What color is a banana?"].reply == "A banana is yellow."
    assert replies["What sound does a dog make?"].answer_key == "barks"
    assert replies["What is the opposite of hot?"].reply == "The opposite of hot is cold."
    assert replies["Turn on the kitchen lights."].reply == "Okay, turning the kitchen lights on."


def test_statements() -> None:
    default = statements()
    assert "A banana is yellow." in default and "Tuesday comes after Monday." in default
    assert not any(s.startswith("Okay") for s in default)
    assert "Two plus three is five." in statements(["arithmetic"])
    assert statements(["home", "small_talk"]) == []
    assert fact_sentences()["world:color:banana"] == "A banana is yellow."
    with pytest.raises(ValueError):
        statements(["weather"])


def test_vocabulary_is_small() -> None:
    vocab = vocabulary()
    print(f"vocabulary: {len(vocab)} words")
    assert 200 <= len(vocab) <= 600
    assert "omni" in vocab and "kitchen" in vocab
    assert all(re.fullmatch(r"[a-z']+", word) for word in vocab)


# --------------------------------------------------------------------------- sampling, splits, documents


def test_sample_is_deterministic_and_balanced() -> None:
    first, again, other = (sample_exchanges(600, seed=s) for s in (1, 1, 2))
    assert first == again and first != other
    assert len(first) == 600 and len({ex.prompt for ex in first}) == 600
    counts = Counter(ex.category for ex in sample_exchanges(100, seed=0))
    assert counts == {c: round(100 * w) for c, w in DEFAULT_WEIGHTS.items()}


def test_sample_caps_small_categories_then_repeats() -> None:
    pool_size = len(all_exchanges())
    sample = sample_exchanges(4000, seed=3)
    counts = Counter(ex.category for ex in sample)
    assert len({ex.prompt for ex in sample}) == 4000
    assert counts["small_talk"] == len(by_category("small_talk"))  # taken whole, surplus moved
    big = sample_exchanges(pool_size + 10, seed=3)
    assert len({ex.prompt for ex in big}) == pool_size


def test_sample_weights_and_pool() -> None:
    world = sample_exchanges(50, seed=0, weights={"world": 1.0})
    assert len(world) == 50 and {ex.category for ex in world} == {"world"}
    pool = by_category("numbers")[:30] + by_category("home")[:30]
    picked = sample_exchanges(20, seed=0, exchanges=pool)
    assert set(picked) <= set(pool)
    # shares renormalised over the two categories present: 20 * 0.30 / 0.45 = 13.3
    assert Counter(ex.category for ex in picked) == {"home": 13, "numbers": 7}
    with pytest.raises(ValueError):
        sample_exchanges(10, weights={"weather": 1.0})
    with pytest.raises(ValueError):
        sample_exchanges(-1)


def test_split_by_prompt() -> None:
    exchanges = all_exchanges()
    splits = split_by_prompt(exchanges, seed=0)
    prompts = {name: {ex.prompt for ex in part} for name, part in splits.items()}
    assert set(splits) == {"train", "dev", "test"}
    assert not (prompts["train"] & prompts["dev"] or prompts["train"] & prompts["test"]
                or prompts["dev"] & prompts["test"])
    assert set().union(*prompts.values()) == {ex.prompt for ex in exchanges}
    for name, share in (("dev", 0.1), ("test", 0.1)):
        assert abs(len(prompts[name]) / len(exchanges) - share) < 0.01
        assert {ex.category for ex in splits[name]} == set(CATEGORIES)
    train_facts = {ex.fact_id for ex in splits["train"]}
    assert all(ex.fact_id in train_facts for ex in splits["dev"] + splits["test"])
    assert split_by_prompt(exchanges, seed=0) == splits
    assert split_by_prompt(exchanges, seed=1)["test"] != splits["test"]


def test_split_keeps_repeated_prompts_together() -> None:
    sample = sample_exchanges(len(all_exchanges()) + 500, seed=5)  # some prompts twice
    splits = split_by_prompt(sample, fractions=(0.6, 0.2, 0.2), seed=5)
    assert sum(len(part) for part in splits.values()) == len(sample)
    where = defaultdict(set)
    for name, part in splits.items():
        for ex in part:
            where[ex.prompt].add(name)
    assert all(len(names) == 1 for names in where.values())
    with pytest.raises(ValueError):
        split_by_prompt(sample, fractions=(0.5, 0.2, 0.2))


def test_make_documents() -> None:
    sentences = statements()
    docs = make_documents(sentences, n_docs=200, min_len=3, max_len=6, seed=4)
    assert len(docs) == 200
    assert all(3 <= len(doc) <= 6 and len(set(doc)) == len(doc) for doc in docs)
    assert {len(doc) for doc in docs} == {3, 4, 5, 6}
    assert all(s in set(sentences) for doc in docs for s in doc)
    assert make_documents(sentences, 200, 3, 6, seed=4) == docs
    assert make_documents(sentences, 200, 3, 6, seed=5) != docs
    with pytest.raises(ValueError):
        make_documents(sentences[:4], n_docs=1, min_len=3, max_len=6)
    with pytest.raises(ValueError):
        make_documents(sentences, n_docs=1, min_len=5, max_len=3)


@pytest.mark.parametrize("text, key, context, expected", [
    # the key in a wrongly restated premise, a wrong answer after it
    ("The day after January sixth is January seventh.", "January sixth",
     "What date comes after January fifth? The day after January fifth is January sixth.", False),
    ("Thirteen minus two is nine.", "thirteen", "What is fifteen take away two? Fifteen minus two is thirteen.", False),
    ("Ninety seven comes before ninety eight.", "ninety eight",
     "What comes before ninety nine? Ninety eight comes before ninety nine.", False),
    # right answers, in the reference's words or others
    ("The day after January fifth is January sixth.", "January sixth",
     "What date comes after January fifth? The day after January fifth is January sixth.", True),
    ("Twenty five comes after twenty four.", "twenty four",
     "What comes before twenty five? Twenty four comes before twenty five.", True),
    ("It is December.", "December", "What is the last month of the year? December is the twelfth month.", True),
    # a hedge with a second number is not an answer
    ("Fifteen minus two is thirteen or twelve.", "thirteen", "What is fifteen take away two?", False),
])
def test_answer_matches_with_context(text: str, key: str, context: str, expected: bool) -> None:
    assert answer_matches(text, key, context) is expected
    assert answer_matches(text, key)  # the key alone is found in every one of them


def test_every_reply_answers_its_prompt_in_context() -> None:
    for ex in all_exchanges():
        context = f"{ex.prompt} {ex.reply}"
        assert answer_matches(ex.reply, ex.answer_key, context), ex
        assert not answer_matches(ex.wrong_reply, ex.answer_key, context), ex
