"""Property: a mail mixing charsets as real mail programs label them reads back as its sender wrote it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.hostile.charset_mails import CharsetMix, assert_reads_back, charset_mixes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(mix=charset_mixes())
def test_a_mail_mixing_charsets_reads_back_as_written(mix: CharsetMix) -> None:
    assert_reads_back(mix)
