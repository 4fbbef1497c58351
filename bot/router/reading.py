"""How the bot reads an inbound message: the NLU's parse with the model version its inbox uses,
and the answers and dialogue that version carries (the content edited in the console), or why
the message goes to a human instead."""

from __future__ import annotations

import logging

from bot.logs import log_event
from bot.nlu.data import Parse
from bot.nlu.remote import NluOverBudget, NluUnavailable
from bot.nlu.responses import Responses
from bot.nlu.service import NluService
from bot.router.dialogue.content import Content, ContentError
from bot.router.dialogue.engine import Dialogue
from conversations.thread_models import Message, Thread

log = logging.getLogger("omnirouter.router.dispatch")  # the dispatcher's log lines, wherever they are made

NO_NLU = "no_nlu"
NO_TEXT = "no_text"  # attachments only: nothing for the bot to read
NLU_UNAVAILABLE = "nlu_unavailable"
NLU_OVER_BUDGET = "nlu_over_budget"  # the NLU took longer than nlu.parse_budget


class BotReader:
    """The NLU (``None``: off) with the install's answers and dialogue, and each account's and
    pinned model's edited ones, parsed once per version."""

    def __init__(self, nlu: NluService | None, responses: Responses, dialogue: Dialogue | None) -> None:
        self._nlu = nlu
        self._responses = responses
        self._dialogue = dialogue
        self._edited: dict[str, tuple[str, Responses, Dialogue | None]] = {}  # "account|pin" -> its version's

    async def parse(self, message: Message, thread: Thread, model: str | None) -> tuple[Parse | None, str]:
        """The NLU's reading of the message, or ``None`` and why the message goes to a human."""
        assert self._nlu is not None
        if not message.text.strip():
            return None, NO_TEXT
        try:
            parse = await self._nlu.parse(thread.account_id, message.text, model)
        except NluOverBudget as exc:
            log_event(log, "dispatch.nlu_over_budget", logging.WARNING, message=message.id, problem=str(exc))
            return None, NLU_OVER_BUDGET
        except NluUnavailable:
            return None, NLU_UNAVAILABLE
        return parse, NO_NLU  # None: no model trained yet

    def bot_of(self, account_id: str, model: str | None = None) -> tuple[Responses, Dialogue | None]:
        """The answers and dialogue of the model version that parses (``model``, an inbox's pinned
        one, or the account's active one): the content edited in the console that the version
        carries, or the install's files."""
        carried = self._nlu.content(account_id, model) if self._nlu is not None else None
        if carried is None:
            return self._responses, self._dialogue
        version, doc = carried
        slot = f"{account_id}|{model or ''}"  # the account's active model, or one of its pins
        known = self._edited.get(slot)
        if known is None or known[0] != version:
            try:
                bot = Content.from_doc(doc).parsed()
            except ContentError as exc:  # checked when saved: only a release reading it otherwise
                log_event(log, "dispatch.content_unreadable", logging.ERROR, version=version, problem=str(exc))
                return self._responses, self._dialogue
            dialogue = self._dialogue.with_content(bot.domain, bot.responses, account_id) if self._dialogue else None
            known = self._edited[slot] = (version, bot.responses, dialogue)
        return known[1], known[2]
