"""What a campaign's report shows, on the console's page and in the API: how far its sending got
(recipients queued and skipped, of the audience's size), its messages by delivery status, why sends
failed, how many a restart interrupted, and how many conversations it started had an answer."""

from __future__ import annotations

from typing import Any

from conversations.campaigns import Campaign, CampaignState
from conversations.repositories import Repositories


async def progress(store: Repositories, campaign: Campaign) -> dict[str, Any]:
    """``counts`` (recipients by state and skip reason), ``handled`` (queued and skipped) of ``total``."""
    counts = await store.campaigns.recipient_counts(campaign.id)
    handled = counts.get("queued", 0) + counts.get("skipped", 0)
    if campaign.state in (CampaignState.DONE, CampaignState.CANCELLED):
        total = handled  # the audience as it was sent to (counting it again would be slow and changed)
    else:
        size = await store.campaigns.audience_size(campaign.account_id, campaign.channel, campaign.audience)
        total = max(size, handled)
    return {"campaign": campaign, "counts": counts, "handled": handled, "total": total}


async def outcomes(store: Repositories, campaign: Campaign) -> dict[str, Any]:
    """``deliveries`` by status, ``failures`` as (reason, count), ``interrupted``, ``replied``."""
    return {
        "deliveries": await store.campaigns.delivery_counts(campaign.id),
        "failures": await store.campaigns.failure_reasons(campaign.id),
        "interrupted": await store.campaigns.interrupted_count(campaign.id),
        "replied": await store.campaigns.replied_count(campaign.account_id, campaign.id, campaign.send_at),
    }


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    """A campaign as the API shows it."""
    audience = campaign.audience
    return {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "inbox_id": campaign.inbox_id,
        "state": str(campaign.state),
        "text": campaign.text,
        "subject": campaign.subject,
        "template": campaign.template,
        "audience": {
            "label": audience.label,
            "attribute": audience.attribute,
            "value": audience.value,
            "contacted_before": audience.contacted_before,
            "contacted_after": audience.contacted_after,
        },
        "created_at": campaign.created_at,
        "created_by": campaign.created_by,
        "send_at": campaign.send_at,
        "finished_at": campaign.finished_at,
    }


async def report_json(store: Repositories, campaign: Campaign) -> dict[str, Any]:
    """A campaign with its counts, as the API shows them."""
    done, after = await progress(store, campaign), await outcomes(store, campaign)
    return {
        **campaign_json(campaign),
        "counts": {
            "audience": done["total"],
            "handled": done["handled"],
            "recipients": done["counts"],
            "deliveries": after["deliveries"],
            "failures": [{"reason": reason, "count": n} for reason, n in after["failures"]],
            "interrupted": after["interrupted"],
            "replied": after["replied"],
        },
    }
