"""Property tests over every channel's parser: whatever the provider (or an attacker holding a
valid signature) sends, the parser accepts it as storable events, refuses it as malformed, or sets
it aside as unsupported; it never raises anything else (which would answer 500)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import strategies
from tests.hostile.parsers import ACCEPTED, MALFORMED, UNSUPPORTED, Parsers

PARSERS = Parsers()
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@pytest.mark.parametrize("channel", sorted(strategies.CHANNEL_BODIES))
@EXAMPLES
@given(data=st.data())
def test_every_parser_accepts_refuses_or_sets_aside(channel: str, data: Any) -> None:
    case = data.draw(strategies.CHANNEL_BODIES[channel]())
    assert PARSERS.check(channel, case) in (ACCEPTED, MALFORMED, UNSUPPORTED)


@EXAMPLES
@given(body=strategies.webchat_bodies(PARSERS.visitor_token))
def test_the_web_chat_parser_accepts_or_refuses(body: bytes) -> None:
    assert PARSERS.check("webchat", body) in (ACCEPTED, MALFORMED)
