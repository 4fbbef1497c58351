"""Log lines: one per event, structured fields, text or JSON."""

from __future__ import annotations

import json
import logging

import pytest

from bot.logs import JsonFormatter, TextFormatter, log_event


def capture(formatter: logging.Formatter, caplog: pytest.LogCaptureFixture) -> str:
    log = logging.getLogger("omnirouter.test")
    with caplog.at_level(logging.INFO, logger="omnirouter.test"):
        log_event(log, "inbound.recorded", channel="webchat", message="msg_1", note="two words")
    return formatter.format(caplog.records[-1])


def test_text_lines_carry_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    line = capture(TextFormatter(), caplog)
    assert line.endswith(' INFO omnirouter.test inbound.recorded channel=webchat message=msg_1 note="two words"')
    assert "\n" not in line


def test_json_lines_are_one_object(caplog: pytest.LogCaptureFixture) -> None:
    doc = json.loads(capture(JsonFormatter(), caplog))
    assert doc["event"] == "inbound.recorded" and doc["level"] == "info" and doc["logger"] == "omnirouter.test"
    assert doc["channel"] == "webchat" and doc["message"] == "msg_1" and doc["ts"].endswith("+00:00")
