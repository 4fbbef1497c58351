"""The codes the router stores, as the words an agent reads: why a conversation went to people,
a thread's status, an API token's scope, an attachment's kind, a timeline entry's kind, a role.

One table per kind of code, every word marked for the translation catalogue; templates call
``{{ thread.status | word("status") }}``. A code of the form ``head:subject``
(``form_failed:order``) is looked up by ``head:`` with the subject filled in, and a code no table
lists is shown readably (``agent_gone`` -> "agent gone") rather than not at all. The code itself
may stay in attributes and classes, where scripts and styles read it.
"""

from __future__ import annotations

from typing import Any

import jinja2

from bot.web.i18n import N_, translate

WORDS: dict[str, dict[str, str]] = {
    # why the bot handed a conversation to people (the queue, the timeline, the reports)
    "reason": {
        "intent:talk_to_human": N_("the customer asked for a person"),
        "intent:": N_("the intent {subject} goes to people"),
        "low_confidence": N_("the bot did not understand twice"),
        "fallback": N_("the bot did not understand"),
        "clarify": N_("the bot asked which was meant"),
        "no_nlu": N_("no bot model to answer"),
        "nlu_unavailable": N_("the bot's language model did not answer"),
        "nlu_over_budget": N_("the message took the bot too long to read"),
        "no_response:": N_("no answer for the intent {subject}"),
        "nothing_to_say:": N_("the bot had nothing to say"),
        "form_failed:": N_("the form {subject} could not be completed"),
        "action_failed:": N_("the action {subject} failed"),
        "direct_channel": N_("the channel goes straight to agents"),
        "missed_call": N_("missed call"),
        "bot_reply_limit": N_("the bot answered too often in a row"),
        "transfer": N_("transferred to the queue"),
        "reopened": N_("the customer wrote again"),
        "agent_offline": N_("the agent went offline"),
        "bounce": N_("a bounced e-mail"),
        "auto_submitted": N_("an automatic e-mail"),
        "mailing_list": N_("a mailing-list e-mail"),
        "bulk": N_("a bulk e-mail"),
        "own_address": N_("an e-mail from our own address"),
        "no_reply_sender": N_("an e-mail from a no-reply address"),
        "unknown": N_("unknown"),
    },
    "channel": {
        "webchat": N_("Web chat"),
        "sms": N_("SMS"),
        "voice": N_("Phone"),
        "email": N_("E-mail"),
        "telegram": N_("Telegram"),
        "whatsapp": N_("WhatsApp"),
    },
    "status": {
        "bot": N_("with the bot"),
        "queued": N_("in the queue"),
        "assigned": N_("assigned"),
        "resolved": N_("resolved"),
    },
    "scope": {"read": N_("read data"), "write": N_("change data")},
    "attachment": {
        "image": N_("image"),
        "document": N_("document"),
        "audio": N_("audio"),
        "video": N_("video"),
        "location": N_("location"),
        "contact": N_("contact card"),
        "other": N_("file"),
    },
    # what a timeline entry records
    "event": {
        "note": N_("Note"),
        "queued": N_("Queued"),
        "assigned": N_("Assigned to"),
        "transferred": N_("Transferred"),
        "resolved": N_("Conversation resolved"),
        "reopened": N_("Reopened"),
        "labels": N_("Labels set"),
        "action": N_("Bot action"),
    },
    "role": {
        "agent": N_("agent"),
        "supervisor": N_("supervisor"),
        "admin": N_("admin"),
        "superadmin": N_("superadmin"),
    },
    "sender": {"customer": N_("Customer"), "bot": N_("Bot"), "agent": N_("Agent"), "system": N_("System")},
    "delivery": {
        "queued": N_("queued"),
        "sent": N_("sent"),
        "delivered": N_("delivered"),
        "read": N_("read"),
        "failed": N_("failed"),
    },
    # which answer an SLA clock waits for
    "sla": {"first_response": N_("first response"), "next_response": N_("next response")},
    # what the bot tried in a conversation, before the form, action or intent it names
    "tried": {
        "form": N_("started the form"),
        "completed": N_("completed the form"),
        "cancelled": N_("the customer cancelled the form"),
        "left": N_("left the form for another question"),
        "gave_up": N_("gave up asking for"),
        "handed_off": N_("handed over to a person from the form"),
        "human": N_("the customer asked for a person"),
        "action": N_("ran the action"),
        "action_failed": N_("the action failed"),
        "offline": N_("answered without the action server instead of"),
        "said": N_("said"),
    },
    "presence": {"online": N_("online"), "offline": N_("offline"), "away": N_("Away")},
    # a webhook delivery's state
    "webhook": {"pending": N_("waiting to be sent"), "sent": N_("sent"), "dead": N_("failed for good")},
    # who did something, when not an agent (the audit log)
    "campaign": {
        "scheduled": N_("scheduled"),
        "sending": N_("sending"),
        "done": N_("done"),
        "cancelled": N_("stopped"),
    },
    "actor": {
        "api": N_("the API"),
        "cli": N_("the command line"),
        "system": N_("the router"),
        "unknown": N_("unknown"),
    },
}


def word(lang: str, kind: str, code: str | None) -> str:
    """``code`` of ``kind`` in ``lang``; a dash for no code."""
    if not code:
        return "—"
    table = WORDS[kind]
    if code in table:
        return translate(lang, table[code])
    head, sep, subject = code.partition(":")
    if sep and f"{head}:" in table:
        return translate(lang, table[f"{head}:"], subject=subject)
    return readable(code)


def first_inbox_name(lang: str, channel: str) -> str:
    """The name of an account's first inbox of ``channel`` (it has none of its own), in ``lang``."""
    return translate(lang, "{channel} (first inbox)", channel=word(lang, "channel", channel))


def readable(code: str) -> str:
    """A code nobody gave words to, made readable: ``agent_gone`` -> "agent gone"."""
    head, sep, subject = code.partition(":")
    return head.replace("_", " ") + (f": {subject}" if sep else "")


@jinja2.pass_context
def word_filter(context: Any, code: str | None, kind: str) -> str:
    """The template filter: ``{{ code | word("status") }}`` in the page's language."""
    return word(str(context["lang"]), kind, code)
