"""Deterministic conversational text for the synthetic speech corpus.

The corpus is a small closed domain that a tiny model can learn on a CPU in
under an hour, with answers a program can check. Six categories
(:data:`CATEGORIES`): ``home`` (smart-home commands, the bulk of the prompts),
``arithmetic``, ``time_date``, ``world`` (about seventy closed-world facts),
``numbers`` and ``small_talk``. The tables live in :mod:`omni.data.synth.domain`.

Each :class:`Exchange` is one user prompt with the correct reply, a
same-shape wrong reply (DPO "rejected"), the short ``answer_key`` a correct
reply contains (score spoken QA with :func:`answer_matches`), and the
``fact_id`` shared by every phrasing of the same fact or intent.

Splits are by prompt sentence, and every fact has several phrasings
(questions three to six, home commands ten to twenty). This is what makes the
test split answerable: a test prompt is a sentence never seen in training, but
its fact was learnt from another phrasing. :func:`split_by_prompt` keeps at
least one phrasing of every fact in ``train`` by default to guarantee it. The
replies (and statements) of a fact are shared across splits on purpose; use
prompts, not replies, as held-out ASR/TTS sentences.

Text conventions: numbers as words (:mod:`omni.data.synth.numbers`), sentence
case, ending punctuation, ASCII letters, spaces, apostrophes, commas and
``. ? !`` only, 3 to 14 words per sentence, US spelling.

Example::

    >>> ex = all_exchanges()[0]
    >>> ex.prompt, ex.reply, ex.answer_key
    ('Turn on the kitchen lights.', 'Okay, turning the kitchen lights on.', 'kitchen lights on')
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from omni.data.synth.domain import (
    CATEGORIES,
    CATEGORY_BUILDERS,
    Fact,
    answer_matches,
    normalize,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_WEIGHTS",
    "SPLITS",
    "Exchange",
    "all_exchanges",
    "all_facts",
    "answer_matches",
    "fact_sentences",
    "make_documents",
    "sample_exchanges",
    "split_by_prompt",
    "statements",
    "vocabulary",
]

DEFAULT_WEIGHTS: dict[str, float] = {
    "home": 0.3,
    "arithmetic": 0.15,
    "time_date": 0.15,
    "world": 0.15,
    "numbers": 0.15,
    "small_talk": 0.1,
}
"""Category shares for :func:`sample_exchanges`; home is large but not overwhelming."""

SPLITS: tuple[str, str, str] = ("train", "dev", "test")


@dataclass(frozen=True)
class Exchange:
    """One user turn and the assistant's answer.

    Attributes:
        prompt: what the user says, e.g. "What color is a banana?".
        reply: the correct assistant reply, e.g. "A banana is yellow.".
        wrong_reply: a plausible wrong reply of the same shape ("A banana is red.").
        category: one of :data:`CATEGORIES`.
        answer_key: short text a correct reply contains ("yellow"); see
            :func:`answer_matches`. The reply contains it, the wrong reply does not.
        fact_id: the fact or intent; all phrasings of it share the id.
    """

    prompt: str
    reply: str
    wrong_reply: str
    category: str
    answer_key: str
    fact_id: str

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {self.category!r}")


@lru_cache(maxsize=1)
def _facts() -> tuple[Fact, ...]:
    return tuple(fact for category in CATEGORIES for fact in CATEGORY_BUILDERS[category]())


def all_facts() -> list[Fact]:
    """Every fact of every category, in the fixed order of :data:`CATEGORIES`."""
    return list(_facts())


@lru_cache(maxsize=1)
def _exchanges() -> tuple[Exchange, ...]:
    out = [
        Exchange(prompt, f.reply, f.wrong_reply, f.category, f.answer_key, f.fact_id)
        for f in _facts()
        for prompt in f.prompts
    ]
    seen: dict[str, str] = {}
    for ex in out:
        if ex.prompt in seen:
            raise ValueError(f"prompt {ex.prompt!r} of {ex.fact_id} repeats {seen[ex.prompt]}")
        seen[ex.prompt] = ex.fact_id
    return tuple(out)


def all_exchanges() -> list[Exchange]:
    """The whole enumerable space: one exchange per distinct prompt, in a fixed order."""
    return list(_exchanges())


def statements(categories: Iterable[str] = ("world", "time_date")) -> list[str]:
    """Plain declarative fact sentences ("A banana is yellow.") of the given categories.

    ``arithmetic`` and most of ``numbers`` have statements too ("Two plus three
    is five."); ``home`` and ``small_talk`` have none.
    """
    wanted = _check_categories(categories)
    return [f.statement for f in _facts() if f.category in wanted and f.statement is not None]


def fact_sentences() -> dict[str, str]:
    """``fact_id -> statement`` for every fact that has one."""
    return {f.fact_id: f.statement for f in _facts() if f.statement is not None}


def vocabulary(exchanges: Iterable[Exchange] | None = None) -> dict[str, int]:
    """Lower-case word counts over prompts, replies and wrong replies (all exchanges by default)."""
    counts: dict[str, int] = {}
    for ex in all_exchanges() if exchanges is None else exchanges:
        for text in (ex.prompt, ex.reply, ex.wrong_reply):
            for word in normalize(text).split():
                counts[word] = counts.get(word, 0) + 1
    return dict(sorted(counts.items()))


def _check_categories(categories: Iterable[str]) -> set[str]:
    wanted = set(categories)
    unknown = wanted - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; expected some of {CATEGORIES}")
    return wanted


def _apportion(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` by ``weights`` with the largest-remainder method (ties: dict order)."""
    total = sum(weights.values())
    exact = {c: n * wt / total for c, wt in weights.items()}
    quotas = {c: int(x) for c, x in exact.items()}
    by_remainder = sorted(weights, key=lambda c: -(exact[c] - quotas[c]))
    for c in by_remainder[: n - sum(quotas.values())]:
        quotas[c] += 1
    return quotas


def _quotas(n: int, weights: Mapping[str, float], sizes: Mapping[str, int]) -> dict[str, int]:
    """Per-category counts: by weight, capped at the category's size while ``n`` fits the pool.

    A capped category's surplus goes to the others by weight. When ``n`` exceeds
    the whole pool, every exchange is taken once and the rest is split by weight.
    """
    total = sum(sizes[c] for c in weights)
    if n >= total:
        extra = _apportion(n - total, weights)
        return {c: sizes[c] + extra[c] for c in weights}
    fixed: dict[str, int] = {}
    open_weights = dict(weights)
    while True:
        quotas = _apportion(n - sum(fixed.values()), open_weights)
        over = [c for c in open_weights if quotas[c] > sizes[c]]
        if not over:
            return {**fixed, **quotas}
        for c in over:
            fixed[c] = sizes[c]
            del open_weights[c]


def _draw(pool: Sequence[Exchange], k: int, rng: random.Random) -> list[Exchange]:
    """``k`` items: a shuffled pass over ``pool``, then further shuffled passes if ``k`` is larger."""
    out: list[Exchange] = []
    while len(out) < k:
        order = list(pool)
        rng.shuffle(order)
        out += order[: k - len(out)]
    return out


def sample_exchanges(
    n: int,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    exchanges: Sequence[Exchange] | None = None,
) -> list[Exchange]:
    """Draw ``n`` exchanges, shuffled, with category shares set by ``weights``.

    Args:
        n: number of exchanges to return.
        seed: the same seed gives the same list.
        weights: category -> non-negative share (:data:`DEFAULT_WEIGHTS` when
            ``None``); categories left out get none. Shares are renormalised
            over the categories present in the pool.
        exchanges: the pool (for example one split); all exchanges when ``None``.

    Without replacement while possible: if ``n`` is at most the pool size (of
    the weighted categories), nothing repeats; a category smaller than its share
    (small talk, world facts) is taken whole and its surplus goes to the others
    by weight. Only a larger ``n`` repeats exchanges, in fresh shuffled passes.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    _check_categories(weights)
    if any(wt < 0 for wt in weights.values()):
        raise ValueError(f"weights must be non-negative, got {weights}")
    pools: dict[str, list[Exchange]] = {c: [] for c in CATEGORIES}
    for ex in all_exchanges() if exchanges is None else exchanges:
        pools[ex.category].append(ex)
    present = {c: wt for c, wt in weights.items() if wt > 0 and pools[c]}
    if not present:
        if n == 0:
            return []
        raise ValueError("no exchanges of any category with a positive weight")
    sizes = {c: len(pools[c]) for c in present}
    out: list[Exchange] = []
    for category, k in _quotas(n, present, sizes).items():
        out += _draw(pools[category], k, random.Random(f"sample:{seed}:{category}"))
    random.Random(seed).shuffle(out)
    return out


def _split_category(
    prompts: list[tuple[str, str]],
    fractions: Sequence[float],
    rng: random.Random,
    keep_fact_in_train: bool,
) -> dict[str, str]:
    """Assign each (prompt, fact_id) of one category to a split name."""
    rng.shuffle(prompts)
    assigned: dict[str, str] = {}
    facts_in_train: set[str] = set()
    pool: list[str] = []
    for prompt, fact_id in prompts:
        if keep_fact_in_train and fact_id not in facts_in_train:
            facts_in_train.add(fact_id)
            assigned[prompt] = "train"
        else:
            pool.append(prompt)
    n_test = min(round(fractions[2] * len(prompts)), len(pool))
    n_dev = min(round(fractions[1] * len(prompts)), len(pool) - n_test)
    for i, prompt in enumerate(pool):
        assigned[prompt] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return assigned


def split_by_prompt(
    exchanges: Sequence[Exchange],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_fact_in_train: bool = True,
) -> dict[str, list[Exchange]]:
    """Split into ``{"train", "dev", "test"}`` by prompt sentence.

    Every distinct prompt lands in exactly one split (repeated exchanges with
    the same prompt stay together), stratified by category so that each split
    sees every category. With ``keep_fact_in_train`` one phrasing of every fact
    is held in train, so every dev/test question is answerable from training
    data; dev and test still get their share of each category's prompts
    (rounded), taken from the remaining phrasings. Order within a split follows
    ``exchanges``.

    Args:
        exchanges: the exchanges to split (for example :func:`all_exchanges`).
        fractions: (train, dev, test) shares, non-negative, summing to one.
        seed: the same seed and input give the same split.
        keep_fact_in_train: reserve one phrasing of each fact for train.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    by_category: dict[str, dict[str, str]] = {c: {} for c in CATEGORIES}
    for ex in exchanges:
        by_category[ex.category].setdefault(ex.prompt, ex.fact_id)
    split_of: dict[str, str] = {}
    for category, prompts in by_category.items():
        rng = random.Random(f"split:{seed}:{category}")
        split_of.update(_split_category(sorted(prompts.items()), fractions, rng, keep_fact_in_train))
    out: dict[str, list[Exchange]] = {name: [] for name in SPLITS}
    for ex in exchanges:
        out[split_of[ex.prompt]].append(ex)
    return out


def make_documents(
    sentences: Sequence[str],
    n_docs: int,
    min_len: int = 3,
    max_len: int = 6,
    seed: int = 0,
) -> list[list[str]]:
    """Group sentences into ``n_docs`` short documents of ``min_len..max_len`` sentences.

    A document is a list of distinct sentences, e.g. a user's run of commands
    or a few statements, for interleaved text/speech data:
    ``[["Turn on the kitchen lights.", "Set a timer for five minutes.", ...], ...]``.
    Sentences are used in shuffled passes, so none repeats before all are used.
    """
    unique = list(dict.fromkeys(sentences))
    if isinstance(n_docs, bool) or not isinstance(n_docs, int) or n_docs < 0:
        raise ValueError(f"n_docs must be a non-negative int, got {n_docs!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if n_docs and len(unique) < max_len:
        raise ValueError(f"need at least max_len={max_len} distinct sentences, got {len(unique)}")
    rng = random.Random(seed)
    pool: list[str] = []
    docs: list[list[str]] = []
    for _ in range(n_docs):
        doc: list[str] = []
        length = rng.randint(min_len, max_len)
        while len(doc) < length:
            if not pool:
                pool = unique[:]
                rng.shuffle(pool)
            candidate = pool.pop()
            if candidate not in doc:
                doc.append(candidate)
        docs.append(doc)
    return docs
