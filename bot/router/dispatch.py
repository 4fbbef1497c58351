"""The decision point: who answers an inbound message, and the bot's dialogue policy.

* the customer's rating of a resolved conversation (``meta["satisfaction"]``, see
  ``bot/router/satisfaction.py``) -> recorded as its rating or comment, the customer thanked;
* thread assigned to an agent -> the agent's (the console shows it); already queued -> it waits;
* a channel keyword (SMS STOP/START/HELP, in ``meta["keyword"]``) -> the customer's consent is
  recorded and the keyword answered with the channel's fixed text, if any; never queued;
* a message that must never be answered automatically (``meta["no_auto_reply"]`` names why: an
  auto-reply, a bounce, a mailing list) -> queued silently; a channel configured to go straight
  to humans, or no NLU (off, or no model yet) -> the human queue, the customer told once;
* otherwise the NLU layer parses the text:
  - a confident intent with a response -> the bot answers, in the customer's language;
  - ``talk_to_human``, an intent marked "escalate", a confident intent without a response, the
    engine failing or taking longer than ``nlu.parse_budget``, or low confidence twice in a row
    -> the human queue, with the reason on the thread (the first time confidence is low, the bot
    asks the customer to rephrase);
  - two intents too close to tell apart -> a clarifying question with them as buttons (a click
    sends the button's text back, which resolves to its intent);
  - the bot already answered ``dispatch.max_bot_replies`` times in this conversation within
    ``dispatch.bot_reply_window`` -> the human queue (reason ``bot_reply_limit``): a customer that
    is itself a bot answering every reply would otherwise keep the two talking forever.
  Every decision is stored on the message with the NLU result it rests on.

Dispatch may run twice for one message (a process died after deciding but before recording the
decision, and the sweeper took over). Every effect is idempotent: queueing is a guarded status
change, and replies carry a dedup key, so a replay sends nothing twice, with one exception: the
bot's answer decided now is sent before it is stored (stored with the decision, in one command),
so a process that dies between the two has it sent again by the replay, like any send in flight
at a crash; so is a new conversation's greeting, sent first on every path.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.logs import log_event
from bot.metrics import Metrics
from bot.nlu.data import Parse
from bot.nlu.responses import Responses
from bot.nlu.service import NluService
from bot.router.dialogue.conversation import Step, respond
from bot.router.dialogue.engine import Dialogue, Said
from bot.router.dialogue.state import DialogueState, conversation_language
from bot.router.dispatch_lease import renewing_dispatch_lease
from bot.router.outbox import Outbox, SentFirst
from bot.router.queue import Queue
from bot.router.reading import NO_NLU, BotReader
from bot.router.thread_turns import ThreadTurns
from conversations.errors import StoreError
from conversations.models import epoch_ms
from conversations.repositories import Repositories
from conversations.thread_models import Activity, Decision, DecisionAction, Message, SenderKind, Thread, ThreadStatus
from conversations.traffic import Identity

if TYPE_CHECKING:
    from bot.router.satisfaction import Satisfaction
    from bot.router.webhooks.events import ThreadEvents

log = logging.getLogger("omnirouter.router.dispatch")

DIRECT = "direct_channel"  # the channel (or the inbox) is configured to go straight to humans
REPLY_LIMIT = "bot_reply_limit"
_STATE_TRIES = 5  # decisions of one message redone on a thread's newer dialogue state before giving up
_STEPS_KEPT = 8  # the thread's last steps kept for replays (a replay comes within a lease or two)


@dataclass(frozen=True)
class ReplyLimit:
    """At most ``replies`` automatic answers per conversation within ``window`` seconds."""

    replies: int = 20
    window: float = 600.0


class Dispatcher:
    def __init__(
        self,
        store: Repositories,
        queue: Queue,
        outbox: Outbox,
        metrics: Metrics,
        queued_notice: str,
        nlu: NluService | None = None,
        responses: Responses | None = None,
        events: ThreadEvents | None = None,
        reply_limit: ReplyLimit | None = None,
        dialogue: Dialogue | None = None,
        satisfaction: Satisfaction | None = None,
        lease: timedelta | None = None,
    ) -> None:
        """``lease``: the dispatch lease (``dispatch.lease_seconds``), renewed while a message is
        decided, so that a slow one is not taken over by a sweeper and decided twice."""
        self._store = store
        self._lease = lease
        self._satisfaction = satisfaction
        self._limit = reply_limit or ReplyLimit()
        self._events = events
        self._queue = queue
        self._outbox = outbox
        self._metrics = metrics
        self._queued_notice = queued_notice
        self._nlu = nlu if nlu is not None and nlu.enabled else None
        self._reader = BotReader(self._nlu, responses or Responses(), dialogue)
        self._deciding: set[str] = set()  # messages this process is deciding now
        self._turns = ThreadTurns()

    def deciding(self, message_id: str) -> bool:
        """Whether this process is deciding ``message_id`` now (its lease may have run out while
        the store was away): the sweeper of this process leaves it to that dispatch."""
        return message_id in self._deciding

    async def dispatch(
        self, message: Message, thread: Thread | None = None, activity: Activity | None = None
    ) -> Decision:
        """Decide on one inbound message, carry the decision out, and record it on the message.
        ``activity``: the message's mark on its thread that the recorder left to be written here."""
        sent_first: list[SentFirst] = []  # the bot's answer sent before it is stored
        if self._lease is None:
            return await self._decided(message, thread, activity, sent_first)
        return await renewing_dispatch_lease(
            self._store, message.id, self._lease, lambda: self._decided(message, thread, activity, sent_first)
        )

    async def _decided(
        self, message: Message, thread: Thread | None, activity: Activity | None, sent_first: list[SentFirst]
    ) -> Decision:
        """The decision carried out and recorded; if that fails after replies were sent (a store
        outage), the replies are stored alone, so that the replay of the message sends none again."""
        self._deciding.add(message.id)
        try:
            return await self._decide(message, thread, activity, sent_first)
        except Exception:
            if sent_first:
                replies = [first.document for first in sent_first]
                await self._outbox.until_stored(lambda: self._store.messages.store_sent_replies(replies), message.id)
            raise
        finally:
            self._deciding.discard(message.id)

    async def _decide(
        self, message: Message, thread: Thread | None, activity: Activity | None, sent_first: list[SentFirst]
    ) -> Decision:
        started = time.perf_counter()
        replay = thread is None or thread.id != message.thread_id  # a sweeper's: it may have been sent
        if thread is None or thread.id != message.thread_id:
            thread = await self._store.threads.get_thread(message.thread_id)
            if thread is None:
                raise StoreError(f"message {message.id} points at missing thread {message.thread_id}")
            await self._mark(thread, Activity.left_unwritten(message, thread))  # a sweeper's: at once
            activity = None
        keyword = message.meta.get("keyword")
        if keyword:
            await self._record_consent(message, keyword)
        parse = None
        direct = await self._queue.account_routing.skips_bot(thread)
        rating = message.meta.get("satisfaction") and self._satisfaction is not None
        to_bot = (
            not rating
            and not keyword
            and thread.status == ThreadStatus.BOT
            and self._nlu is not None
            and not direct
            and not message.meta.get("no_auto_reply")
        )
        if not to_bot:  # only the bot's decision writes the thread anyway (its dialogue state)
            await self._mark(thread, activity)
        greeted = None if rating or keyword else await self._greet(message, thread, None if replay else sent_first)
        if rating and self._satisfaction is not None:
            decision = await self._satisfaction.answer(message, thread)  # a rating, never a question
        elif thread.status == ThreadStatus.ASSIGNED:
            decision = Decision(DecisionAction.TO_AGENT, "assigned", thread.id)
        elif keyword:
            decision = await self._answer_keyword(message, thread, keyword)
        elif to_bot:
            decision, parse = await self._bot(message, thread, activity, sent_first)
        else:
            decision = await self._to_queue(message, thread, DIRECT if direct else NO_NLU)
        if greeted is not None:
            decision = dataclasses.replace(decision, replies=(greeted.id, *decision.replies))
        await self._finish(message, thread, decision, parse, sent_first)
        await self._queue.after_dispatch(message, thread, decision)
        self._metrics.decisions.labels(str(decision.action)).inc()
        self._metrics.dispatch_latency.observe(time.perf_counter() - started)
        log_event(
            log,
            "dispatch.decided",
            message=message.id,
            thread=thread.id,
            action=str(decision.action),
            reason=decision.reason,
            intent=parse.intent if parse else None,
        )
        return decision

    async def _finish(
        self, message: Message, thread: Thread, decision: Decision, parse: Parse | None, sent_first: list[SentFirst]
    ) -> None:
        """Publish the message's webhook events (before the decision is recorded: a replay publishes
        again) and record the decision, with the replies sent before they were stored in the same
        command: asked again while the store is away (the customer has them already)."""
        nlu = parse.to_doc() if parse else None
        replies = [first.document for first in sent_first]

        async def record() -> None:
            if self._events is not None:
                await self._publish(message, thread, decision)
            await self._store.messages.finish_dispatch(message.id, decision, nlu, replies)

        if not sent_first:
            await record()
            return
        await self._outbox.until_stored(record, message.id)
        for first in sent_first:
            await self._outbox.settle(first, thread)

    async def _publish(self, message: Message, thread: Thread, decision: Decision) -> None:
        """The webhook events of this message; their ids derive from it, so a replay adds none."""
        assert self._events is not None
        if thread.opened_at == message.created_at:  # the recorder opened the thread for this message
            await self._events.publish("thread.created", thread, f"created|{thread.id}")
        await self._events.message(thread, message)
        if decision.action == DecisionAction.QUEUED:
            await self._events.publish("thread.queued", thread, f"queued|{message.id}", reason=decision.reason)

    async def _greet(self, message: Message, thread: Thread, sent_first: list[SentFirst] | None) -> Message | None:
        """The inbox's greeting, as the first reply of a conversation this message opened (not of
        one it reopened), before any other; never to a message that must not be answered
        automatically (an auto-reply, a bounce). With ``sent_first`` it is sent before the answer
        that follows, or dead-lettered if that attempt fails (never after the answer); a replay
        enqueues it (its dedup key stores and sends it once)."""
        if thread.opened_at != message.created_at or message.meta.get("no_auto_reply"):
            return None
        greeting = await self._queue.account_routing.greeting_of(thread)
        if not greeting:
            return None
        return await self._send(message, thread, "greeting", greeting, SenderKind.SYSTEM, (), sent_first)

    async def _mark(self, thread: Thread, activity: Activity | None) -> None:
        if activity is not None:
            await self._store.threads.mark_activity(thread.id, activity)

    async def _bot(
        self, message: Message, thread: Thread, activity: Activity | None, sent_first: list[SentFirst]
    ) -> tuple[Decision, Parse | None]:
        """The bot's answer; the message's ``activity`` written with the dialogue state (alone
        when the message goes to a human instead). A step decided now (not a replay's) sends its
        first text before storing it, into ``sent_first``."""
        model = await self._queue.account_routing.model_of(thread)  # its inbox's own model version, if any
        parse, reason = await self._reader.parse(message, thread, model)
        if parse is None:
            await self._mark(thread, activity)
            return await self._to_queue(message, thread, reason), None
        responses, dialogue = self._reader.bot_of(thread.account_id, model)
        async with self._turns.turn(thread.id) as turn:  # one decision of the thread at a time here
            # the state read with the thread, or the one the turn before this one wrote or read
            # (no second read on the usual path); a swap refused because another process changed
            # it meanwhile reads it again
            stored = turn.newest(thread.nlu_state)
            tried = False  # a swap of this dispatch reported lost: it may have held before the thread moved on
            replayed = False
            for _ in range(_STATE_TRIES):
                steps = list(stored.get("steps") or ())
                done = next((s for s in steps if s.get("message") == message.id), None)
                state = DialogueState.from_doc(stored)
                if done is not None:  # a replay: this message was decided, and maybe acted on, already
                    step, replayed = Step.recorded(done, parse, state), True
                    break
                at_ms = epoch_ms(message.created_at)  # the message's time: a replay counts the same
                replies = [t for t in state.replies_ms if t > at_ms - self._limit.window * 1000]
                if len(replies) >= self._limit.replies:
                    spoken = conversation_language(state.language, parse.language, parse.text)
                    step = Step(REPLY_LIMIT, dataclasses.replace(state, language=spoken), parse, handoff=True)
                else:
                    said = Said(thread.id, thread.channel, message.text, message.id)
                    step = await respond(dialogue, responses, said, parse, state)
                if not step.handoff and step.texts:
                    replies.append(at_ms)
                after = dataclasses.replace(step.state, replies_ms=tuple(replies))
                kept = [*steps, step.record(message.id)][-_STEPS_KEPT:]
                doc = {**after.to_doc(), "by": message.id, "steps": kept}
                # the state and the step first, then what it says: of two messages of one thread
                # decided at once in two processes, the second is decided again on the first's state
                if await self._store.threads.swap_thread_nlu_state(thread.id, int(stored.get("v", 0)), doc, activity):
                    thread.nlu_state, activity = {**doc, "v": int(stored.get("v", 0)) + 1}, None
                    turn.written = thread.nlu_state
                    break
                tried = True
                stored = await self._store.threads.thread_nlu_state(thread.id)
                turn.written = stored  # what the turns waiting behind this one start from
            else:
                log_event(log, "dispatch.state_contended", logging.WARNING, message=message.id, thread=thread.id)
        if replayed:
            if not tried:  # a swap of this dispatch wrote the step, and the activity with it
                await self._mark(thread, activity)
            return await self._carry_out(message, thread, step, responses), parse
        await self._mark(thread, activity)  # not written with a state: the contact was erased, or contention
        return await self._carry_out(message, thread, step, responses, sent_first), step.parse

    async def _carry_out(
        self,
        message: Message,
        thread: Thread,
        step: Step,
        responses: Responses,
        sent_first: list[SentFirst] | None = None,
    ) -> Decision:
        """A step sent (each text a reply of its own, the buttons on the last) or handed to a human.
        With ``sent_first``, the first text is sent before it is stored (see ``_send``)."""
        for n, note in enumerate(step.notes):  # ids from the message: a replay adds none
            await self._queue.note_bot_action(thread, note, f"tl-{message.id}-bot-{n}")
        if not step.handoff and not step.texts:  # never a silent dead end: a person answers instead
            step = dataclasses.replace(step, handoff=True, reason=f"nothing_to_say:{step.reason}")
        if step.handoff:
            notice = "\n\n".join(step.texts) or None
            language = responses.language(step.state.language)
            handoff = responses.line("handoff", language, self._queued_notice)
            return await self._to_queue(message, thread, step.reason, notice or handoff)
        sent = []
        for n, text in enumerate(step.texts):
            options = tuple(step.options) if n == len(step.texts) - 1 else ()
            kind = "bot-reply" if n == 0 else f"bot-reply-{n}"
            first = sent_first if n == 0 else None
            sent.append(await self._send(message, thread, kind, text, SenderKind.BOT, options, first))
        return Decision(DecisionAction.ANSWERED, step.reason, thread.id, replies=tuple(m.id for m in sent))

    async def _to_queue(self, message: Message, thread: Thread, reason: str, notice: str | None = None) -> Decision:
        reason = str(message.meta.get("no_auto_reply") or reason)
        queued_now = thread.status == ThreadStatus.BOT and await self._queue.escalate(
            thread, reason, by_message=message.id
        )
        if not queued_now:
            current = await self._store.threads.get_thread(thread.id) if thread.status == ThreadStatus.BOT else thread
            if current is None or current.queued_by != message.id:
                return Decision(DecisionAction.WAITING, "already_queued", thread.id)
            # this very message queued the thread before a crash: finish what it started
        if message.meta.get("no_auto_reply"):
            return Decision(DecisionAction.QUEUED, reason, thread.id)
        sent = await self._send(message, thread, "queued-notice", notice or self._queued_notice, SenderKind.SYSTEM)
        return Decision(DecisionAction.QUEUED, reason, thread.id, replies=(sent.id,))

    async def _send(
        self,
        message: Message,
        thread: Thread,
        kind: str,
        text: str,
        sender: SenderKind,
        options: tuple[str, ...] = (),
        sent_first: list[SentFirst] | None = None,
    ) -> Message:
        """Enqueue one reply to ``message``, at most once however often dispatch runs; with
        ``sent_first``, send it first and leave it there to be stored with the decision: the
        message's dispatch lease keeps it durable meanwhile (a process that dies before storing
        the reply leaves the message to a sweeper, whose replay stores the reply first)."""
        reply: dict[str, Any] = {
            "dedup_key": f"{message.id}:{kind}",
            "thread": thread,
            "to": _reply_address(message, thread),
            "text": text,
            "sender": {"kind": str(sender)},
            "in_reply_to": message.id,
            "options": options,
        }
        once = kind == "greeting"  # first or never: not retried after the answer it comes before
        if sent_first is not None and (first := await self._outbox.send_first(retry=not once, **reply)) is not None:
            sent_first.append(first)
            return first.message
        return await self._outbox.enqueue_reply(**reply)

    async def _record_consent(self, message: Message, keyword: Mapping[str, Any]) -> None:
        """STOP and START change what the customer may be sent on this channel, whoever holds
        the thread; the newest keyword wins however dispatches interleave."""
        if keyword.get("kind") in ("stop", "start"):
            await self._store.phone.set_consent(
                message.account_id,
                message.channel,
                str(message.sender.get("address", "")),
                str(keyword["kind"]),
                epoch_ms(message.created_at),
                message.id,
            )

    async def _answer_keyword(self, message: Message, thread: Thread, keyword: Mapping[str, Any]) -> Decision:
        replies: tuple[str, ...] = ()
        if keyword.get("reply"):
            reply = await self._send(message, thread, "keyword-reply", str(keyword["reply"]), SenderKind.SYSTEM)
            replies = (reply.id,)
        return Decision(DecisionAction.ANSWERED, f"keyword:{keyword.get('kind')}", thread.id, replies)


def _reply_address(message: Message, thread: Thread) -> Identity:
    return Identity(thread.channel, thread.address or str(message.sender.get("address", "")))
