"""The web chat page's words in the visitor's language.

``chat.html`` carries the English; ``chat.js`` asks ``GET /chat/words`` for the page's words in
one language and puts them in. The language is the page's ``?lang=`` (a site embedding the chat
can set it), else the browser's ``Accept-Language``, else the install's ``console.language``. The
words come from the same gettext catalogs as the console's (a test checks that every text of
chat.html and chat.js is listed here, so it is extracted and translated).
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import SETTINGS
from bot.web.i18n import LANGUAGES, N_, pick_language, words_of

CHAT_WORDS = (
    N_("Chat with us"),
    N_("Chat"),
    N_("Connecting…"),
    N_("Online"),
    N_("Offline — reconnecting"),
    N_("Ask us anything."),
    N_("Type your question below and press Enter — we answer right here, in this window."),
    N_("Your message"),
    N_("Write a message…"),
    N_("Send"),
    N_("sending…"),
    N_("Earlier messages cannot be loaded right now."),
    N_("We could not save your message yet — retrying…"),
    N_("That message could not be sent."),
    N_("Typing…"),
    N_("Close chat"),
    N_("Agent"),
    N_("Assistant"),
    N_("This conversation was resolved"),
    # the pre-chat and offline forms (visitor_forms.py names their errors)
    N_("Before we start"),
    N_("Your name"),
    N_("E-mail"),
    N_("Phone"),
    N_("I agree that my details are kept to answer me."),
    N_("Privacy notice (opens in a new tab)"),
    N_("Start chat"),
    N_("We are away right now"),
    N_("Leave us your message and e-mail: we will answer by e-mail."),
    N_("Our hours:"),
    N_("Send message"),
    N_("Thank you: we got your message and will answer by e-mail to {email} when we are open."),
    N_("Please write your name."),
    N_("Please write an e-mail address like name@example.com."),
    N_("Please write a phone number with its country code, like +371 2000 0000."),
    N_("Please write your e-mail or phone number."),
    N_("Please agree to continue."),
    N_("Please write your message."),
    # a visitor's file (uploads.py names its refusals)
    N_("Send a file or image"),
    N_("This file is too large: at most {mb} MB."),
    N_("This kind of file cannot be sent: send an image, a PDF, a text or an Office document."),
    N_("Files cannot be received right now. Please try again later."),
    N_("The file could not be sent."),
)


def browser_language(accept_language: str) -> str | None:
    """The first language of an ``Accept-Language`` header (by weight) that the catalogs have."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-weight, position, tag.strip().lower().split("-")[0]))
    for weight, _, code in sorted(ranked):
        if code in LANGUAGES and weight < 0:
            return code
    return None


async def chat_words(request: web.Request) -> web.Response:
    fallback = request.app[SETTINGS].console.language
    requested = request.query.get("lang") or browser_language(request.headers.get("Accept-Language", ""))
    lang = pick_language(requested, fallback)
    return web.json_response(
        {"lang": lang, "words": words_of(lang, CHAT_WORDS)},
        headers={"Cache-Control": "no-cache", "Vary": "Accept-Language"},
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/chat/words", chat_words)]
