"""Customer satisfaction: asking the customer to rate a resolved conversation, and taking the answer.

When an agent resolves a conversation of an account that asks (``Account.satisfaction``), the
customer is asked once, through the outbox, on the channel they used: buttons 1-5 on the web chat,
Telegram (inline keyboard) and WhatsApp (only inside its 24-hour window; outside it the question is
recorded as skipped, and counted); a question to answer with a digit by SMS; an e-mail with signed
single-use links to a small rating page. A contact is not asked again within the account's
``quiet_days``.

A customer's message on that channel while they have no open conversation there, within
``ANSWER_WINDOW`` of the question, that is a rating ("4", a button's "4") is recorded in the
resolved conversation as its rating rather than opening a new one; free text within
``COMMENT_WINDOW`` after the rating is the rating's comment, and a rating sent again within it (a
second tap) is recorded there too, changing nothing. Anything else goes on as usual.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.logs import log_event
from bot.router.outbox import Outbox
from conversations.membership import thread_key
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk
from conversations.tenant_models import Account
from conversations.thread_models import Decision, DecisionAction, Message, SenderKind, Thread
from conversations.traffic import Identity, Inbound

log = logging.getLogger("omnirouter.router.satisfaction")

ANSWER_WINDOW = timedelta(days=7)  # a rating by message answers a question at most this old
COMMENT_WINDOW = timedelta(minutes=10)  # free text this soon after a rating is its comment
RATINGS = ("1", "2", "3", "4", "5")
BUTTON_CHANNELS = ("webchat", "telegram", "whatsapp")
TEXT_CHANNELS = ("sms",)
LANGUAGES = ("en", "lv", "ru")
TEXT_KINDS = ("question", "email", "thanks")
WINDOW_CLOSED = "window_closed"
NO_LINKS = "no_public_url"

DEFAULT_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "question": "How would you rate the help you got? Reply with a number from 1 (poor) to 5 (excellent).",
        "email": "How would you rate the help you got? Choose from 1 (poor) to 5 (excellent):",
        "thanks": "Thank you for your rating! If you like, tell us more in your next message.",
    },
    "lv": {
        "question": "Kā jūs novērtētu saņemto palīdzību? Atbildiet ar skaitli no 1 (slikti) līdz 5 (izcili).",
        "email": "Kā jūs novērtētu saņemto palīdzību? Izvēlieties no 1 (slikti) līdz 5 (izcili):",
        "thanks": "Paldies par vērtējumu! Ja vēlaties, pastāstiet vairāk nākamajā ziņā.",
    },
    "ru": {
        "question": "Как вы оцените полученную помощь? Ответьте числом от 1 (плохо) до 5 (отлично).",
        "email": "Как вы оцените полученную помощь? Выберите от 1 (плохо) до 5 (отлично):",
        "thanks": "Спасибо за оценку! Если хотите, расскажите подробнее в следующем сообщении.",
    },
}

_RATING = re.compile(r"\s*([1-5])\s*(?:/\s*5)?\s*[.!*★⭐]*\s*")


def rating_of(text: str) -> int | None:
    """The rating a customer's text gives ("4", "4/5", "5!"), or ``None``."""
    found = _RATING.fullmatch(text)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class SatisfactionSettings:
    """One account's question: whether it is asked, how often, and in which words."""

    enabled: bool = False
    quiet_days: float = 30.0  # a contact is not asked again within this many days
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # language -> kind -> text

    @classmethod
    def of(cls, account: Account | None) -> SatisfactionSettings:
        doc = (account.satisfaction if account is not None else None) or {}
        texts = doc.get("texts") if isinstance(doc.get("texts"), dict) else {}
        return cls(bool(doc.get("enabled", False)), float(doc.get("quiet_days", 30.0)), texts or {})

    def text(self, kind: str, language: str) -> str:
        """The account's text of ``kind`` in ``language`` (English when it has no such language),
        or the default."""
        lang = language if language in LANGUAGES else "en"
        own = str((self.texts.get(lang) or {}).get(kind) or "").strip()
        return own or DEFAULT_TEXTS[lang][kind]

    def to_doc(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "quiet_days": self.quiet_days,
            "texts": {k: dict(v) for k, v in self.texts.items()},
        }


class RatingLinks:
    """Signed links to the rating page of one question (the e-mail channel): ``/csat/<token>``,
    the token naming the account and the question, signed with a sealed key of this install."""

    def __init__(self, public_url: str) -> None:
        self._base = public_url.rstrip("/")
        self._key = b""

    async def start(self, store: Repositories) -> None:
        key, _ = await store.secrets.sealed_secret("satisfaction-links", lambda: secrets.token_urlsafe(32))
        self._key = key.encode()

    @property
    def usable(self) -> bool:
        return bool(self._base and self._key)

    def token(self, ask: SatisfactionAsk) -> str:
        body = f"{ask.account_id}.{ask.id}"
        return f"{body}.{self._sign(body)}"

    def url(self, ask: SatisfactionAsk, rating: int | None = None) -> str:
        return f"{self._base}/csat/{self.token(ask)}" + (f"?rating={rating}" if rating else "")

    def opened(self, token: str) -> tuple[str, str] | None:
        """``(account id, question id)`` of a genuine token, else ``None``."""
        body, _, signature = token.rpartition(".")
        account_id, _, ask_id = body.partition(".")
        if not account_id or not ask_id or not self._key:
            return None
        return (account_id, ask_id) if hmac.compare_digest(signature, self._sign(body)) else None

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]


class Satisfaction:
    """Asks after resolution, tells a rating from a new question, and records the answer."""

    def __init__(self, store: Repositories, outbox: Outbox, links: RatingLinks | None = None) -> None:
        self._store = store
        self._outbox = outbox
        self.links = links

    async def start(self) -> None:
        if self.links is not None:
            await self.links.start(self._store)

    async def settings(self, account_id: str) -> SatisfactionSettings:
        return SatisfactionSettings.of(await self._store.accounts.get_account(account_id))

    async def ask(self, thread: Thread) -> SatisfactionAsk | None:
        """Ask the customer of the just-resolved ``thread`` to rate it, if the account asks, the
        channel can, and the contact was not asked lately; the question recorded, or ``None``."""
        settings = await self.settings(thread.account_id)
        if not settings.enabled or thread.channel not in (*BUTTON_CHANNELS, *TEXT_CHANNELS, "email"):
            return None
        now = utcnow()
        if await self._store.satisfaction.asked_since(
            thread.account_id, thread.contact_id, now - timedelta(days=settings.quiet_days)
        ):
            return None
        language = str((await self._store.threads.thread_nlu_state(thread.id)).get("language") or "en")
        skipped = None
        if self._outbox.capabilities(thread.channel).window_open(thread.wa_window_ends_at, now) is False:
            skipped = WINDOW_CLOSED
        elif thread.channel == "email" and (self.links is None or not self.links.usable):
            skipped = NO_LINKS
        ask = SatisfactionAsk(
            id=f"sat_{thread.id}_{epoch_ms(now)}",
            account_id=thread.account_id,
            thread_id=thread.id,
            contact_id=thread.contact_id,
            channel=thread.channel,
            asked_at=now,
            language=language if language in LANGUAGES else "en",
            agent_id=thread.assignee or thread.last_assignee,
            team=thread.team,
            skipped=skipped,
            inbox=thread_key(thread),
        )
        await self._store.satisfaction.record_ask(ask)
        log_event(log, "satisfaction.asked", thread=thread.id, channel=thread.channel, skipped=skipped)
        if skipped is None:
            question = await self._send_question(thread, ask, settings)
            # queued after the resolution's own event: its own tells every process (consoles, and
            # the web chat of the process the visitor is connected to) that the question is there
            await self._store.events.emit_event(
                thread.account_id,
                "thread",
                utcnow(),
                thread_id=thread.id,
                inbox=thread_key(thread),
                replies=[question.id],
            )
        return ask

    async def _send_question(self, thread: Thread, ask: SatisfactionAsk, settings: SatisfactionSettings) -> Message:
        text = settings.text("email" if thread.channel == "email" else "question", ask.language)
        options: tuple[str, ...] = RATINGS if thread.channel in BUTTON_CHANNELS else ()
        meta: dict[str, Any] = {"satisfaction": ask.id}
        if thread.channel == "telegram":
            meta["buttons"] = "inline"
        if thread.channel == "email" and self.links is not None:
            text = _email_text(text, [self.links.url(ask, r) for r in range(1, 6)])
        return await self._outbox.enqueue_reply(
            dedup_key=f"satisfaction:{ask.id}",
            thread=thread,
            to=Identity(thread.channel, thread.address or ""),
            text=text,
            sender={"kind": str(SenderKind.SYSTEM)},
            options=options,
            meta=meta,
        )

    async def tag(self, inbound: Inbound, contact_id: str, now: datetime) -> tuple[Inbound, str] | None:
        """For a customer with no open conversation on the channel: their message marked as the
        rating (or comment) of the question it answers, and that question's thread; ``None`` for
        anything else."""
        if inbound.channel not in (*BUTTON_CHANNELS, *TEXT_CHANNELS):
            return None
        ask = await self._store.satisfaction.latest_ask(
            inbound.account_id, contact_id, inbound.channel, now - ANSWER_WINDOW
        )
        if ask is None:
            return None
        rating = rating_of(inbound.text)
        just_rated = ask.rated_at is not None and now - ask.rated_at <= COMMENT_WINDOW
        if rating is not None and (ask.rating is None or just_rated):  # a second tap changes nothing
            answer: dict[str, Any] = {"ask": ask.id, "rating": rating}
        elif just_rated and ask.comment is None and inbound.text.strip():
            answer = {"ask": ask.id, "comment": True}
        else:
            return None
        return dataclasses.replace(inbound, meta={**inbound.meta, "satisfaction": answer}), ask.thread_id

    async def answer(self, message: Message, thread: Thread) -> Decision:
        """Record the rating or comment ``message`` carries (tagged by :meth:`tag`); a rating is
        thanked, once however often dispatch runs."""
        answer = message.meta.get("satisfaction") or {}
        ask_id = str(answer.get("ask", ""))
        if answer.get("comment"):
            await self._store.satisfaction.add_comment(message.account_id, ask_id, message.text.strip()[:2000])
            return Decision(DecisionAction.ANSWERED, "satisfaction_comment", thread.id)
        rating = int(answer.get("rating", 0))
        taken = await self._store.satisfaction.rate(message.account_id, ask_id, rating, message.created_at)
        log_event(log, "satisfaction.rated", thread=thread.id, rating=rating, taken=taken)
        ask = await self._store.satisfaction.get_ask(message.account_id, ask_id)
        if ask is None or ask.rated_at is None or epoch_ms(ask.rated_at) != epoch_ms(message.created_at):
            # answered before, by another message or the e-mail page
            return Decision(DecisionAction.ANSWERED, "satisfaction_repeated", thread.id)
        settings = await self.settings(message.account_id)
        thanks = await self._outbox.enqueue_reply(
            dedup_key=f"{message.id}:satisfaction-thanks",
            thread=thread,
            to=Identity(thread.channel, thread.address or str(message.sender.get("address", ""))),
            text=settings.text("thanks", ask.language),
            sender={"kind": str(SenderKind.SYSTEM)},
            in_reply_to=message.id,
        )
        return Decision(DecisionAction.ANSWERED, "satisfaction_rating", thread.id, replies=(thanks.id,))


def _email_text(question: str, urls: list[str]) -> str:
    lines = [question, ""]
    lines += [f"{n} {'★' * n}: {url}" for n, url in enumerate(urls, start=1)]
    return "\n".join(lines)
