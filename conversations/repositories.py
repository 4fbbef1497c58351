"""Every repository of the data layer over one client: what the application, the CLI and the tests
are handed instead of a driver object. See docs/data.md for what each repository owns.

A repository is named for an aggregate and its methods for what the router needs
(``messages.record_inbound``, ``queue.claim_next_queued``, ``outbox.lease_outbox``); each holds no
state of its own beyond what it asks the client for (the read batchers), so building them is cheap
and they all share the client's connection pool and group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymongo import monitoring

from conversations import (
    accounts,
    agents,
    audit,
    campaign_counts,
    campaigns,
    contact_merges,
    contacts,
    events,
    files,
    inboxes,
    mail_domains,
    messages,
    nlu,
    outbox,
    privacy,
    queue,
    reports,
    satisfaction,
    sign_in,
    threads,
    training,
    webhooks,
)
from conversations.accounts import AccountsRepository
from conversations.agents import AgentsRepository
from conversations.audit import AuditRepository
from conversations.campaigns import CampaignsRepository
from conversations.client import IndexPlan, StoreClient
from conversations.contact_merges import ContactMergesRepository
from conversations.contacts import ContactsRepository
from conversations.events import EventsRepository
from conversations.files import FilesRepository
from conversations.inboxes import InboxesRepository
from conversations.mail import MailRepository
from conversations.mail_domains import MailDomainsRepository
from conversations.messages import MessagesRepository
from conversations.nlu import NluRepository
from conversations.outbox import OutboxRepository
from conversations.phone import PhoneRepository
from conversations.privacy import PrivacyRepository
from conversations.queue import QueueRepository
from conversations.reports import ReportsRepository
from conversations.satisfaction import SatisfactionRepository
from conversations.sealed_secrets import SealedSecretsRepository
from conversations.sign_in import SignInRepository
from conversations.threads import ThreadsRepository
from conversations.training import TrainingRepository
from conversations.webhooks import WebhooksRepository

# every repository's indexes, created at start-up (a collection may be read by several)
INDEXES: tuple[IndexPlan, ...] = (
    contacts.INDEXES,
    contact_merges.INDEXES,
    threads.INDEXES,
    messages.INDEXES,
    outbox.INDEXES,
    queue.INDEXES,
    events.INDEXES,
    agents.INDEXES,
    sign_in.INDEXES,
    accounts.INDEXES,
    inboxes.INDEXES,
    mail_domains.INDEXES,
    webhooks.INDEXES,
    nlu.INDEXES,
    training.INDEXES,
    privacy.INDEXES,
    audit.INDEXES,
    reports.INDEXES,
    files.INDEXES,
    satisfaction.INDEXES,
    campaigns.INDEXES,
    campaign_counts.INDEXES,
)


@dataclass(frozen=True, slots=True)
class Repositories:
    """The data layer: one client and a repository per aggregate. Build with :meth:`connect`."""

    client: StoreClient
    contacts: ContactsRepository
    merges: ContactMergesRepository
    threads: ThreadsRepository
    messages: MessagesRepository
    outbox: OutboxRepository
    queue: QueueRepository
    events: EventsRepository
    agents: AgentsRepository
    sign_in: SignInRepository
    accounts: AccountsRepository
    inboxes: InboxesRepository
    mail_domains: MailDomainsRepository
    secrets: SealedSecretsRepository
    webhooks: WebhooksRepository
    nlu: NluRepository
    training: TrainingRepository
    privacy: PrivacyRepository
    audit: AuditRepository
    reports: ReportsRepository
    mail: MailRepository
    phone: PhoneRepository
    files: FilesRepository
    satisfaction: SatisfactionRepository
    campaigns: CampaignsRepository

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        *,
        timeout_ms: int = 3000,
        on_command: Callable[[str], None] | None = None,
        listeners: Sequence[monitoring.CommandListener] = (),
        reports_read_preference: str = "primary",
    ) -> Repositories:
        """Every repository over a new client of ``database`` at ``uri``; no I/O happens until the
        first operation. ``on_command`` is called with the name of every command sent (one store
        round trip); ``listeners`` are for tools that look at the commands themselves (bench/);
        ``reports_read_preference``: where the admin reports read (a read preference's name)."""
        client = StoreClient.connect(uri, database, timeout_ms=timeout_ms, on_command=on_command, listeners=listeners)
        return cls.over(client, reports_read_preference=reports_read_preference)

    @classmethod
    def over(cls, client: StoreClient, *, reports_read_preference: str = "primary") -> Repositories:
        """Every repository over ``client``."""
        return cls(
            client=client,
            contacts=ContactsRepository(client),
            merges=ContactMergesRepository(client),
            threads=ThreadsRepository(client),
            messages=MessagesRepository(client),
            outbox=OutboxRepository(client),
            queue=QueueRepository(client),
            events=EventsRepository(client),
            agents=AgentsRepository(client),
            sign_in=SignInRepository(client),
            accounts=AccountsRepository(client),
            inboxes=InboxesRepository(client),
            mail_domains=MailDomainsRepository(client),
            secrets=SealedSecretsRepository(client),
            webhooks=WebhooksRepository(client),
            nlu=NluRepository(client),
            training=TrainingRepository(client),
            privacy=PrivacyRepository(client),
            audit=AuditRepository(client),
            reports=ReportsRepository(client, reports_read_preference),
            mail=MailRepository(client),
            phone=PhoneRepository(client),
            files=FilesRepository(client),
            satisfaction=SatisfactionRepository(client),
            campaigns=CampaignsRepository(client),
        )

    async def ensure_indexes(self) -> None:
        """Create every index the repositories rely on and bring records of earlier releases up to
        date; safe to run at every start-up (see ``StoreClient.ensure_indexes``)."""
        await self.client.ensure_indexes(
            INDEXES,
            upgrades=(
                self.outbox.adopt_legacy_outbox,
                self.outbox.retire_due_time_index,
                self.queue.backfill_queue_order,
                self.nlu.backfill_nlu_sources,
                self.messages.backfill_search_text,
                self.contacts.backfill_search_text,
                self.mail_domains.grandfather_listener_mailboxes,
            ),
        )

    async def close(self) -> None:
        await self.client.close()
