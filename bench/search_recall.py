"""Recall of the console's search on a fixed set of queries: 40 customer messages in English,
Latvian and Russian (words with and without diacritics, inflected forms, phone numbers written
several ways, e-mail addresses, order numbers), recorded through the real store, and 36 queries as
agents type them, each with the messages it should find. Prints recall (expected messages found),
precision (found messages that were expected) and the p50 / p99 query time on the embedded store.

    PYTHONPATH=. .venv/bin/python bench/search_recall.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound

MESSAGES = {
    "en1": "Where is my order A-10234? It was due on Monday.",
    "en2": "My parcel arrived damaged, the box was crushed.",
    "en3": "Please call me back at +1 415 555 0123",
    "en4": "I paid twice for order B-7781, please refund one payment",
    "en5": "Can I change the delivery address to 12 Brivibas street?",
    "en6": "Write to me at anna.berzina@example.lv instead",
    "en7": "Do you ship to Lithuania and Estonia?",
    "en8": "The invoice INV-2026/114 has the wrong company name",
    "en9": "Opening hours on Saturday?",
    "en10": "I want to return the blue jacket, size M",
    "en11": "Refund still not received after two weeks",
    "en12": "Thanks, the courier delivered it today",
    "lv1": "Kur ir mans pasūtījums A-10234?",
    "lv2": "Paka atnāca bojāta, kaste bija saspiesta",
    "lv3": "Lūdzu, piezvaniet man uz 2000 0000",
    "lv4": "Samaksāju divreiz par pasūtījumu B-7781",
    "lv5": "Vai varat mainīt piegādes adresi?",
    "lv6": "Rakstiet man uz janis@pasts.lv",
    "lv7": "Vai sūtāt uz Lietuvu?",
    "lv8": "Rēķinā INV-2026/114 ir nepareizs uzņēmuma nosaukums",
    "lv9": "Kāds ir jūsu darba laiks sestdienā?",
    "lv10": "Gribu atgriezt zilo jaku",
    "lv11": "Naudas atmaksa vēl nav saņemta",
    "lv12": "Paldies, kurjers šodien piegādāja",
    "lv13": "Bērziņa kundze gaida zvanu",
    "ru1": "Где мой заказ A-10234?",
    "ru2": "Посылка пришла повреждённой, коробка смята",
    "ru3": "Позвоните мне: +371 2000 0000",
    "ru4": "Я заплатил дважды за заказ B-7781",
    "ru5": "Можно изменить адрес доставки?",
    "ru6": "Пишите на ivan.petrov@mail.example",
    "ru7": "Вы доставляете в Литву?",
    "ru8": "В счёте INV-2026/114 неверное название компании",
    "ru9": "Какой у вас график работы в субботу?",
    "ru10": "Хочу вернуть синюю куртку",
    "ru11": "Возврат денег ещё не получен",
    "ru12": "Спасибо, курьер сегодня доставил",
    "ru13": "Ёлка пришла без подставки",
    "mix1": "Order A-10234 / pasūtījums / заказ: status?",
    "mix2": "Phone 0037120000000, e-mail anna.berzina@example.lv",
}

QUERIES: dict[str, set[str]] = {
    "a-10234": {"en1", "lv1", "ru1", "mix1"},
    "A-10234": {"en1", "lv1", "ru1", "mix1"},
    "b-7781": {"en4", "lv4", "ru4"},
    "inv-2026/114": {"en8", "lv8", "ru8"},
    "20000000": {"lv3", "ru3", "mix2"},
    "+371 2000 0000": {"ru3", "mix2"},
    "37120000000": {"ru3", "mix2"},
    "4155550123": {"en3"},
    "anna.berzina@example.lv": {"en6", "mix2"},
    "janis@pasts.lv": {"lv6"},
    "ivan.petrov@mail.example": {"ru6"},
    "pasutijums": {"lv1", "lv4", "mix1"},
    "pasūtījums": {"lv1", "lv4", "mix1"},
    "pasūtījum": {"lv1", "lv4", "mix1"},
    "berzina": {"lv13"},
    "Bērziņa": {"lv13"},
    "заказ": {"ru1", "ru4", "mix1"},
    "зака": {"ru1", "ru4", "mix1"},
    "елка": {"ru13"},
    "ёлка": {"ru13"},
    "посылка": {"ru2"},
    "parcel": {"en2"},
    "refund": {"en4", "en11"},
    "damaged": {"en2"},
    "damag": {"en2"},
    "order a-10234": {"en1", "mix1"},
    "bojāta": {"lv2"},
    "bojata": {"lv2"},
    "piegādes adresi": {"lv5"},
    "адрес доставки": {"ru5"},
    "lithuania": {"en7"},
    "Литву": {"ru7"},
    "курьер": {"ru12"},
    "kurjers": {"lv12"},
    "saturday": {"en9"},
    "jaku": {"lv10"},
}


async def run(repeat: int, data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir)
    await embedded.start()
    store = Repositories.connect(embedded.uri, "search_bench")
    try:
        await store.ensure_indexes()
        ids: dict[str, str] = {}
        for key, text in MESSAGES.items():
            inbound = Inbound("bench", "webchat", key, Identity("webchat", f"visitor-{key}"), text)
            contact = await store.contacts.find_or_create_contact("bench", inbound.sender, None, utcnow())
            thread = await store.threads.open_thread("bench", contact, inbound.sender, utcnow())
            message, _ = await store.messages.record_inbound(
                inbound, contact, thread.id, utcnow(), timedelta(minutes=1)
            )
            ids[message.id] = key
        expected_total = found_expected = found_total = 0
        missed: list[str] = []
        seconds: list[float] = []
        for query, expected in QUERIES.items():
            for _ in range(repeat):
                started = time.perf_counter()
                found = {ids[m.id] for m in await store.messages.search_messages("bench", query)}
                seconds.append(time.perf_counter() - started)
            expected_total += len(expected)
            found_expected += len(found & expected)
            found_total += len(found)
            if found != expected:
                missed.append(f"  {query!r}: missed {sorted(expected - found)}, extra {sorted(found - expected)}")
        seconds.sort()
        print(f"{len(MESSAGES)} messages, {len(QUERIES)} queries ({repeat} runs each)")
        print(f"recall {found_expected / expected_total:.1%} ({found_expected} of {expected_total} expected found)")
        print(f"precision {found_expected / found_total:.1%} ({found_expected} of {found_total} found were expected)")
        print(
            f"query p50 {statistics.median(seconds) * 1000:.2f} ms, "
            f"p99 {seconds[int(len(seconds) * 0.99)] * 1000:.2f} ms"
        )
        if missed:
            print("queries that differ:\n" + "\n".join(missed))
    finally:
        await store.close()
        await embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs of each query, for the times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.repeat, Path(tmp)))


if __name__ == "__main__":
    main()
