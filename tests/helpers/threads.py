"""A fixture that runs a test module's tiny-model tests on one torch thread.

Tiny models gain nothing from intra-op threads, and on a loaded shared machine OpenMP threads
waiting for busy cores slow small ops down by orders of magnitude. Import it into a test module::

    from tests.helpers.threads import one_torch_thread  # noqa: F401
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
