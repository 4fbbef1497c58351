import gc
from collections.abc import Iterator

import pytest

from conversations.collector import YOUNG_THRESHOLD, settle_collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield before
    gc.set_threshold(*before)


def test_the_youngest_generation_waits_longer_and_the_older_keep_their_ratios(thresholds: tuple[int, int, int]) -> None:
    settle_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
