"""A fixture that gives every test of a module a fresh accelerate state.

accelerate keeps one process-wide ``AcceleratorState`` / ``PartialState``; a test that builds an ``Accelerator``
(CPU flag, mixed precision, gradient accumulation) would otherwise see the previous test's. Import it into a
test module::

    from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401
"""

from __future__ import annotations

import pytest
from accelerate.state import AcceleratorState


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
