"""A fake Twilio on 127.0.0.1: the Messages REST resource the ``twilio`` client calls, and the
webhook side (form posts signed with ``X-Twilio-Signature`` exactly as Twilio signs them)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import BasicAuth, web
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from conversations.models import utcnow

HANDLERS = Path(__file__).resolve().parent.parent / "handlers"  # each channel's fixtures/
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
PUBLIC_URL = "https://router.example.com"  # the router behind a proxy, as Twilio sees it


def fixture(kind: str, name: str, **changes: str) -> dict[str, str]:
    """A recorded webhook's form fields, with some changed."""
    params: dict[str, str] = json.loads((HANDLERS / kind / "fixtures" / f"{name}.json").read_text())
    params.update(changes)
    return params


def signature(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params if hasattr(params, "getall") else dict(params)))


async def post_webhook(
    client: TestClient,
    path: str,
    params: Mapping[str, str],
    *,
    sign_url: str | None = None,
    token: str = AUTH_TOKEN,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """POST a form to the router as Twilio does, signed over the public URL."""
    url = sign_url if sign_url is not None else PUBLIC_URL + path
    sent = {"X-Twilio-Signature": signature(url, params, token), **(headers or {})}
    return await client.post(path, data=dict(params), headers=sent)


class FakeTwilio:
    """``POST /2010-04-01/Accounts/{sid}/Messages.json``. ``failures`` scripts the next answers'
    errors; ``fail_on`` the error of the n-th call (counted from 1 in ``calls``). MMS media: ``GET
    .../Messages/{sid}/Media/{sid}`` of a file in ``media`` (by its ME sid) redirects, as Twilio does,
    to where the file lies — ``/cdn/{sid}`` on ``cdn_base`` (this fake unless set), which serves it
    and notes the ``Authorization`` it was given in ``cdn_auth``. ``GET .../IncomingPhoneNumbers.json``
    lists the account's ``numbers`` (number: friendly name), filtered by ``PhoneNumber``."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token  # the one Twilio account it serves
        self.sent: list[dict[str, str]] = []
        self.sent_at: list[float] = []  # time.monotonic() of each accepted message (benchmarks)
        # (status, body) or (status, body, headers): the next answers' errors
        self.failures: list[tuple[Any, ...]] = []
        self.fail_on: dict[int, tuple[int, dict[str, Any]]] = {}
        self.calls = 0
        self.media: dict[str, tuple[bytes, str]] = {}
        self.cdn_base = ""
        self.cdn_auth: list[str] = []
        self.numbers: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create_message)
        app.router.add_get("/2010-04-01/Accounts/{account}/Messages/{message}/Media/{media}", self._media)
        app.router.add_get("/cdn/{media}", self._cdn)
        app.router.add_get("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json", self._numbers)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def bodies_to(self, number: str) -> list[str]:
        return [m["Body"] for m in self.sent if m["To"] == number]

    def _refused(self, request: web.Request) -> web.Response | None:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            auth = BasicAuth("")
        credentials = (self.account_sid, self.auth_token)
        if (auth.login, auth.password) != credentials or request.match_info["account"] != self.account_sid:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        return None

    async def _media(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if request.match_info["media"] not in self.media:
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        raise web.HTTPTemporaryRedirect(f"{self.cdn_base or self.url}/cdn/{request.match_info['media']}")

    async def _numbers(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        wanted = request.query.get("PhoneNumber")
        path = f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
        listed = [
            {"sid": f"PN{n:032x}", "account_sid": self.account_sid, "phone_number": number, "friendly_name": name}
            for n, (number, name) in enumerate(self.numbers.items())
            if wanted in (None, number)
        ]
        page = {"first_page_uri": path, "next_page_uri": None, "previous_page_uri": None, "uri": path}
        return web.json_response({"incoming_phone_numbers": listed, "page": 0, "page_size": 50, "start": 0, **page})

    async def _cdn(self, request: web.Request) -> web.Response:
        self.cdn_auth.append(request.headers.get("Authorization", ""))
        data, content_type = self.media[request.match_info["media"]]
        return web.Response(body=data, content_type=content_type)

    async def _create_message(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        form = await request.post()
        self.calls += 1
        if self.failures or self.calls in self.fail_on:
            status, body, *headers = self.fail_on.pop(self.calls, None) or self.failures.pop(0)
            return web.json_response({"status": status, **body}, status=status, headers=headers[0] if headers else None)
        sid = "SM" + uuid.uuid4().hex
        record = {key: str(form[key]) for key in form}
        record["Sid"] = sid
        self.sent.append(record)
        self.sent_at.append(time.monotonic())
        now = format_datetime(utcnow())
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": record.get("To"),
                "from": record.get("From"),
                "messaging_service_sid": record.get("MessagingServiceSid"),
                "body": record.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "price": None,
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )
