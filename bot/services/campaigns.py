"""Sending campaigns: each contact of a campaign's audience gets the message once, through the outbox,
at the campaign's pace.

A contact without an identity on the campaign's channel, or one who opted out there (SMS STOP), is
skipped and counted. Every other contact's message is recorded in the contact's open thread on the
channel (or a thread opened for it), so a reply lands in that thread as any other message would,
and is queued in the outbox under a key derived from campaign and contact: a replay after a stop is
a no-op at the store, never a second send. The campaign's position (the last contact handled) moves
after each page, and a sender started later (another process, a restart) resumes every campaign
still ``sending``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.business_hours import QuietHours
from bot.handlers.kit.card import SendLimits
from bot.handlers.kit.protocol import ChannelAdapter
from bot.handlers.kit.twilio_lines import serves_of
from bot.logs import log_event
from bot.router.outbox import Outbox
from bot.router.replies import ReplyRefused, template_message
from bot.sending_settings import CampaignSettings
from bot.services.campaign_pace import Pace, TierGate
from bot.tasks import pause, raise_if_cancelled, stop_tasks, wait_set
from conversations.campaigns import (
    Audience,
    Campaign,
    CampaignsRepository,
    CampaignState,
    Recipient,
    RecipientState,
    audience_position,
)
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Contact, SenderKind, Thread
from conversations.traffic import Identity

log = logging.getLogger("omnirouter.services.campaigns")

ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a custom attribute's key, as accounts define them
PAGE = 200  # contacts read (and recipients recorded) at a time
STATE_CHECK = 1.0  # seconds between looks at whether a campaign was stopped (and at the clock in quiet hours)
CONCURRENT = 32  # messages of one campaign being stored at once
CONSENT_CHANNELS = frozenset({"sms", "whatsapp", "email"})  # channels whose opt-outs the consent records keep


def campaign_key(campaign_id: str, contact_id: str) -> str:
    """The outbox's dedup key of one campaign message: one per campaign and contact, ever."""
    return f"cmp:{campaign_id}:{contact_id}"


class CampaignSender:
    """Sends the campaigns that are due, one task per campaign, and resumes unfinished ones."""

    def __init__(
        self,
        store: Repositories,
        outbox: Outbox,
        settings: CampaignSettings,
        default_timezone: str = "UTC",
        public_url: str = "",
        adapters: Mapping[str, ChannelAdapter] | None = None,
        limits: Mapping[str, SendLimits] | None = None,
        first_mailbox_account: str | None = None,
    ) -> None:
        self.adapters: Mapping[str, ChannelAdapter] = adapters or {}
        # the account the install's own mailbox (``[email]``) serves: every other account sends
        # e-mail campaigns through a mailbox inbox of its own
        self.first_mailbox_account = first_mailbox_account
        self._limits: Mapping[str, SendLimits] = limits or {}
        self._public_url = public_url.rstrip("/")
        self._store = store
        self._outbox = outbox
        self._settings = settings
        self._quiet = QuietHours.parse(settings.quiet_hours)
        self._default_zone = default_timezone
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run :meth:`run` in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self.run(), name="campaigns")

    async def stop(self) -> None:
        """Queue no more campaign messages (those started are stored); safe to call twice."""
        if self._task is not None:
            await stop_tasks([self._task])

    def wake(self) -> None:
        """Look for due campaigns now (one was just created to send at once)."""
        self._wake.set()

    async def run(self) -> None:
        """Start every due campaign's sending until cancelled."""
        try:
            while True:
                raise_if_cancelled()
                try:
                    await self.start_due()
                except StoreUnavailable:
                    log_event(log, "campaigns.store_unavailable", logging.WARNING)
                    await pause(self._settings.poll_interval)
                    continue
                if await wait_set(self._wake, self._settings.poll_interval):
                    self._wake.clear()
        finally:
            for task in self._running.values():
                task.cancel()
            if self._running:
                await asyncio.wait(list(self._running.values()), timeout=5)

    async def start_due(self) -> None:
        for campaign in await self._store.campaigns.due_campaigns(utcnow()):
            task = self._running.get(campaign.id)
            if task is None or task.done():
                self._running[campaign.id] = asyncio.create_task(self.send(campaign), name=f"campaign-{campaign.id}")

    async def send(self, campaign: Campaign) -> None:
        """Send ``campaign`` from its position to the end of its audience (or until it is cancelled)."""
        started = await self._store.campaigns.start_sending(campaign.id)
        if started is None:
            return
        log_event(log, "campaign.sending", campaign=campaign.id, position=started.position or "")
        pace, position = self._pace(campaign.channel), started.position
        tier = TierGate(
            self._store.campaigns,
            started,
            self._limits.get(campaign.channel, SendLimits()).daily_unique,
            lambda: self._still_sending(campaign),
        )
        label = started.audience.label
        # a label's contacts as they are when the walk starts (or resumes): read once, not a page
        labelled = await self._store.campaigns.labelled_contacts(started.account_id, label) if label else None
        while True:
            page = await self._store.campaigns.audience_page(started, position, PAGE, labelled)
            if not page:
                break
            fresh = await self._store.campaigns.unrecorded(started, page)
            if fresh:
                recipients, stopped = await self._send_page(started, fresh, pace, tier)
            else:  # a page handled before: an admin's stop is still seen while walking past it
                recipients, stopped = [], not await self._still_sending(campaign)
            await self._store.campaigns.record_recipients(started, recipients)
            if stopped:
                log_event(log, "campaign.stopped", campaign=campaign.id)
                return
            position = audience_position(page[-1])
            await self._store.campaigns.advance_position(campaign.id, position)
        await self._store.campaigns.finish_campaign(campaign.id, utcnow())
        log_event(log, "campaign.done", campaign=campaign.id)

    def _pace(self, channel: str) -> Pace:
        """The campaign rate, or the channel's own when that is lower."""
        own = self._limits.get(channel, SendLimits()).per_second
        return Pace(min(self._settings.rate, own) if own > 0 else self._settings.rate)

    async def _send_page(
        self, campaign: Campaign, page: Sequence[Contact], pace: Pace, tier: TierGate
    ) -> tuple[list[Recipient], bool]:
        """Each contact's message queued (or the reason it is skipped), and whether the campaign
        was stopped meanwhile (an admin's stop is seen within ``STATE_CHECK`` seconds). The
        messages start at the campaign's pace, within the channel's messaging tier; their threads are found or opened ``CONCURRENT``
        at a time, and several messages are stored at once (the store batches concurrent writes)."""
        recipients, deliverable = await self._consenting(campaign, page)
        started: list[asyncio.Task[Recipient]] = []
        stopped, checked = not await self._still_sending(campaign), time.monotonic()
        try:
            for at in range(0, len(deliverable), CONCURRENT):
                chunk = deliverable[at : at + CONCURRENT]
                if stopped or not await self._outside_quiet_hours(campaign):
                    stopped = True
                    break
                behind = [task for task in started[:-CONCURRENT] if not task.done()]
                if behind:  # at most two chunks in flight
                    await asyncio.wait(behind)
                threads = await self._store.campaigns.open_threads_for(
                    campaign.account_id, [(c.id, identity) for c, identity in chunk], utcnow(), campaign.inbox_id
                )
                for contact, identity in chunk:
                    if not await tier.allow(started):
                        stopped = True
                        break
                    await pace.wait()
                    thread = threads[contact.id]
                    started.append(asyncio.create_task(self._send_one(campaign, contact, identity, thread)))
                if time.monotonic() - checked > STATE_CHECK:
                    stopped, checked = not await self._still_sending(campaign), time.monotonic()
            return recipients + [await task for task in started], stopped
        finally:
            pending = [task for task in started if not task.done()]
            if pending:  # stopped midway: let the messages already started be stored
                await asyncio.wait(pending, timeout=5)

    async def _consenting(
        self, campaign: Campaign, page: Sequence[Contact]
    ) -> tuple[list[Recipient], list[tuple[Contact, Identity]]]:
        """The page's skipped recipients (no identity on the channel, opted out there), and the
        contacts to send to with their identity, in order."""
        skipped: list[Recipient] = []
        candidates: list[tuple[Contact, Identity]] = []
        for contact in page:
            identity = _identity_on(contact, campaign.channel)
            if identity is None:
                skipped.append(Recipient(contact.id, RecipientState.SKIPPED, "no_identity"))
            else:
                candidates.append((contact, identity))
        if campaign.channel not in CONSENT_CHANNELS:
            return skipped, candidates
        opted_out = await asyncio.gather(  # one batched read
            *(self._store.phone.opted_out(campaign.account_id, campaign.channel, i.address) for _, i in candidates)
        )
        skipped += [
            Recipient(c.id, RecipientState.SKIPPED, "opted_out") for (c, _), out in zip(candidates, opted_out) if out
        ]
        return skipped, [pair for pair, out in zip(candidates, opted_out) if not out]

    async def _still_sending(self, campaign: Campaign) -> bool:
        return await self._store.campaigns.campaign_state(campaign.id) == CampaignState.SENDING

    async def _message_meta(self, campaign: Campaign, identity: Identity) -> dict[str, Any]:
        """What the channel needs beyond the text: an e-mail's subject and its one-click
        unsubscribe link (RFC 8058)."""
        meta: dict[str, Any] = {"campaign": campaign.id}
        if campaign.subject:
            meta["subject"] = campaign.subject
        if campaign.template:
            meta["template"] = dict(campaign.template)
        if campaign.channel == "email" and self._public_url:
            token = await self._store.campaigns.unsubscribe_link(campaign, identity.address)
            meta["list_unsubscribe"] = f"{self._public_url}/unsubscribe/{token}"
        return meta

    async def _outside_quiet_hours(self, campaign: Campaign) -> bool:
        """Return once it is not quiet hours in the account's time zone (at once, mostly); ``False``
        if the campaign was stopped while it waited."""
        if self._quiet.start is None:
            return True
        account = await self._store.accounts.get_account(campaign.account_id)
        zone = ZoneInfo(str(((account.routing or {}) if account else {}).get("timezone", self._default_zone)))
        while (ends := self._quiet.ends(utcnow(), zone)) is not None:
            log_event(log, "campaign.quiet_hours", campaign=campaign.id, until=ends.isoformat())
            await pause(min(max((ends - utcnow()).total_seconds(), 0.05), STATE_CHECK))
            if not await self._still_sending(campaign):
                return False
        return True

    async def _send_one(self, campaign: Campaign, contact: Contact, identity: Identity, thread: Thread) -> Recipient:
        message = await self._outbox.enqueue_reply(
            dedup_key=campaign_key(campaign.id, contact.id),
            thread=thread,
            to=identity,
            text=campaign.text,
            sender={"kind": str(SenderKind.BOT), "campaign": campaign.id},
            meta=await self._message_meta(campaign, identity),
            at_most_once=True,  # a crash mid-send leaves it reported as interrupted, never sent twice
            live=False,  # thousands of sends: not one console refresh each
        )
        return Recipient(contact.id, RecipientState.QUEUED, message_id=message.id)


class CampaignRefused(ValueError):
    """The campaign cannot be created as asked; the message says why (shown to the admin)."""


async def create_campaign(
    store: Repositories,
    sender: CampaignSender | None,
    *,
    account_id: str,
    name: str,
    channel: str,
    text: str,
    audience: Audience | None = None,
    subject: str | None = None,
    template: str | None = None,
    parameters: Sequence[str] = (),
    send_at: datetime | None = None,
    created_by: str | None = None,
    inbox_id: str | None = None,
) -> Campaign:
    """Store a campaign to send at ``send_at`` (now when not given) and wake the sender.

    On a channel with a reply window (WhatsApp) a message sent first must be one of the channel's
    templates: ``template`` with its ``parameters``, checked here against the configuration (the
    text is the template's, filled in). ``inbox_id`` sends through one of the account's extra
    inboxes of the channel (``None``: its first; for e-mail, an account without a mailbox of its
    own — the install's — sends through its only mailbox inbox)."""
    if not name.strip():
        raise CampaignRefused("a campaign needs a name")
    if channel == "email" and inbox_id is None and sender is not None and sender.first_mailbox_account != account_id:
        inbox_id = await _only_mailbox(store, account_id)
    if inbox_id is not None:
        await _check_inbox(store, account_id, channel, inbox_id)
    if audience is not None and audience.attribute and not ATTRIBUTE_KEY.fullmatch(audience.attribute):
        raise CampaignRefused(f"{audience.attribute!r} is not an attribute name")
    sent_as: dict[str, Any] | None = None
    adapter = sender.adapters.get(channel) if sender is not None else None
    if adapter is not None and (template or adapter.capabilities.reply_window):
        if not template:
            raise CampaignRefused(f"a campaign on {channel} needs one of its templates")
        try:
            text, sent_as = await template_message(adapter, account_id, template, list(parameters), inbox_id)
        except ReplyRefused as exc:
            raise CampaignRefused(str(exc)) from None
    if not text.strip():
        raise CampaignRefused("a campaign needs a message")
    now = utcnow()
    campaign = Campaign(
        id=CampaignsRepository.new_campaign_id(),
        account_id=account_id,
        name=name.strip(),
        channel=channel,
        state=CampaignState.SCHEDULED,
        created_at=now,
        send_at=send_at or now,
        audience=audience or Audience(),
        text=text,
        subject=subject or None,
        template=sent_as,
        created_by=created_by,
        inbox_id=inbox_id,
    )
    await store.campaigns.create_campaign(campaign)
    if sender is not None and campaign.send_at <= now:
        sender.wake()
    return campaign


async def _check_inbox(store: Repositories, account_id: str, channel: str, inbox_id: str) -> None:
    """Refuse an inbox that is not one of the account's enabled inboxes of ``channel`` (another
    account's inbox is refused in the same words as one that does not exist)."""
    inbox = await store.inboxes.get_inbox(inbox_id)
    if inbox is None or inbox.account_id != account_id or inbox.channel != channel:
        raise CampaignRefused(f"the account has no {channel} inbox {inbox_id}")
    if inbox.disabled:
        raise CampaignRefused(f"the inbox {inbox.name} is disabled")
    if channel == "sms" and serves_of(inbox.config) == "calls":
        raise CampaignRefused(f"the number of the inbox {inbox.name} serves calls only: no texts go out from it")


async def _only_mailbox(store: Repositories, account_id: str) -> str:
    """The mailbox inbox an e-mail campaign of an account without a mailbox of its own (the
    install's) goes out from when it names none: its only enabled one."""
    mailboxes = [inbox.id for inbox in await store.inboxes.list_inboxes(account_id, "email") if not inbox.disabled]
    if not mailboxes:
        raise CampaignRefused("the account has no mailbox to send from: add a mailbox inbox first")
    if len(mailboxes) > 1:
        raise CampaignRefused("the account has several mailboxes: choose one of its mailboxes to send from")
    return mailboxes[0]


def _identity_on(contact: Contact, channel: str) -> Identity | None:
    found: Sequence[Identity] = [i for i in contact.identities if i.channel == channel]
    return found[0] if found else None
