"""Module-scoped fixtures of the audio-tokenizer tests: the mini speech corpus and the tiny frozen LM
(built once per test module by :mod:`tests.helpers.speech_data`). Import them into a test module::

    from tests.helpers.speech_fixtures import corpus, lm_dir  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.speech_data import mini_corpus, tiny_lm


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return mini_corpus(tmp_path_factory)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    return tiny_lm(tmp_path_factory)
