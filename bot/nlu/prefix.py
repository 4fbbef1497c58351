"""The part of a customer's text the NLU reads: a bounded prefix, whatever the channel let in.

The embedding engine's cost grows with the text (about 2 ms per token on one core here: a
50,000-character SMS is some 10,000 tokens, twenty seconds), while a classifier needs a sentence or
two to tell an intent. So the NLU reads at most ``nlu.max_tokens`` tokens of the engine's
tokenizer (special tokens and e5's ``query:`` prefix included), and the message is stored whole.
Without a tokenizer (the lexical tier alone, a remote Rasa) the bound is counted in characters.
"""

from __future__ import annotations

from collections.abc import Callable

CHARS_PER_TOKEN = 8  # no tokenizer at hand: characters read per token of the bound
LONG_CHARS = 160  # texts longer than this are embedded in the long lane (``bot.nlu.lanes``)
# ... and so are texts of more tokens than this (punctuation, emoji, digits: a token a character or
# more, so a prefix cut to the bound can be short in characters and cost the engine ten times a question)
LONG_TOKENS = 40

TokenCount = Callable[[str], int]


def nlu_prefix(text: str, max_tokens: int, count: TokenCount | None = None) -> str:
    """The longest prefix of ``text`` with at most ``max_tokens`` tokens (``count`` counts them;
    without it, ``max_tokens * CHARS_PER_TOKEN`` characters)."""
    cut = text[: max_tokens * CHARS_PER_TOKEN]
    if count is None or count(cut) <= max_tokens:
        return cut
    low, high = 0, len(cut)  # count(cut[:low]) fits, count(cut[:high]) does not
    while high - low > 1:
        middle = (low + high) // 2
        if count(cut[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle
    return cut[:low]
