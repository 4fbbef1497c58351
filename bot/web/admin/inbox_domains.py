"""The Verify button of the inboxes page (``/admin/inboxes``): a mailbox the SMTP listener feeds
receives mail only once its account has proven the address's domain its own with a DNS TXT record
(``bot/services/mail_domains.py``); the button looks the record up and says in words what it found
and what to do."""

from __future__ import annotations

from aiohttp import web

from bot import audit
from bot.handlers.email.domain_proof import Found
from bot.keys import SETTINGS, STORE
from bot.services.inbox_routes import domain_of_another, route_of
from bot.services.mail_domains import TAKEN, proof_needed, verify_domain
from bot.web.admin.inboxes import own_inbox, show
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, plain, signed_in
from conversations.agent_models import Role

_FOUND = {
    Found.PROVEN: N_("Verified: {domain} is this account's; this mailbox now receives its mail."),
    Found.NO_RECORD: N_(
        "Not verified: {domain} has no TXT record omnirouter-verification=… yet. Add the record shown at the "
        "domain's DNS provider, wait until it is published, then press Verify again."
    ),
    Found.WRONG_TOKEN: N_(
        "Not verified: the omnirouter-verification record of {domain} has another token. Change it to the one "
        "shown, then press Verify again."
    ),
    Found.NO_DOMAIN: N_("Not verified: the domain {domain} does not exist in the DNS. Check the address."),
    Found.NO_ANSWER: N_("Not verified: no name server answered for {domain}. Try again later."),
    TAKEN: N_("Not verified: the mail domain {domain} is another account's: a domain's mail goes to one account."),
}


@signed_in(Role.ADMIN)
async def verify(request: web.Request) -> web.Response:
    """Look up the TXT record of the mailbox's domain and show what was found."""
    admin, app = current_agent(request), request.app
    inbox = await own_inbox(request, admin)
    if inbox is None:
        return plain(404, "no such inbox in this account")
    domain = proof_needed(app[SETTINGS], inbox)
    if domain is None:
        text = translate(
            admin.lang, "Nothing to verify: only a mailbox this install's SMTP listener feeds proves its domain."
        )
        return await show(request, 422, result={"id": inbox.id, "ok": False, "text": text})
    taken = await domain_of_another(app[STORE], admin.account_id, route_of(inbox.channel, inbox.config)) is not None
    outcome = await verify_domain(app[STORE], app[SETTINGS], inbox, taken)
    await audit.record(app[STORE], admin.account_id, admin, "inbox.verify", inbox.id, outcome=outcome)
    text = translate(admin.lang, _FOUND[outcome], domain=domain)
    return await show(request, result={"id": inbox.id, "ok": outcome == Found.PROVEN, "text": text})


def routes() -> list[web.RouteDef]:
    return [web.post("/admin/inboxes/{inbox_id}/verify", verify)]
