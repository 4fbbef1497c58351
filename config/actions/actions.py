"""The starter bot's custom action, for Rasa's action server (``rasa-sdk``): order status.

A demonstration of what a business plugs in: it looks the order up in ``demo_orders.json`` beside
this file, where a real shop would ask its order system. Run it with
``SANIC_HOST=127.0.0.1 python -m rasa_sdk --actions actions --port 5055`` from this folder, and set
``dialogue.action_endpoint = "http://127.0.0.1:5055/webhook"`` (docs/dialogue.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

ORDERS = Path(__file__).with_name("demo_orders.json")

SAY = {
    "en": {
        "shipped": "Order {number} left our warehouse on {date}; it is with {carrier}, tracking number {tracking}.",
        "processing": "Order {number} is being packed and will leave our warehouse by {date}.",
        "delivered": "Order {number} was delivered on {date}.",
        "unknown": "I could not find order {number}. Please check the number in your confirmation e-mail.",
        "invalid": "{number} is not an order number we give out: please check your confirmation e-mail.",
    },
    "lv": {
        "shipped": "Pasūtījums {number} izsūtīts {date}; to piegādā {carrier}, izsekošanas numurs {tracking}.",
        "processing": "Pasūtījums {number} tiek komplektēts un tiks izsūtīts līdz {date}.",
        "delivered": "Pasūtījums {number} piegādāts {date}.",
        "unknown": "Pasūtījumu {number} neatradu. Lūdzu, pārbaudiet numuru apstiprinājuma e-pastā.",
        "invalid": "{number} nav mūsu pasūtījuma numurs: lūdzu, pārbaudiet apstiprinājuma e-pastu.",
    },
    "ru": {
        "shipped": "Заказ {number} отправлен {date}; его везёт {carrier}, номер отслеживания {tracking}.",
        "processing": "Заказ {number} собирается и будет отправлен до {date}.",
        "delivered": "Заказ {number} доставлен {date}.",
        "unknown": "Я не нашёл заказ {number}. Проверьте, пожалуйста, номер в письме с подтверждением.",
        "invalid": "{number} не похож на наш номер заказа: проверьте, пожалуйста, письмо с подтверждением.",
    },
}


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        number = str(tracker.get_slot("order_number") or "").upper().lstrip("#")
        language = tracker.get_slot("language") or "en"
        texts = SAY.get(language, SAY["en"])
        order = json.loads(ORDERS.read_text(encoding="utf-8")).get(number)
        if order is None:
            dispatcher.utter_message(text=texts["unknown"].format(number=number))
            return [SlotSet("order_status", "unknown")]
        dispatcher.utter_message(text=texts[order["status"]].format(number=number, **order))
        return [SlotSet("order_status", order["status"])]


class ValidateOrderStatusForm(FormValidationAction):
    """Checks the order number the customer gave before the form goes on: written in capitals, and
    not a number no order ever has (all zeros)."""

    def name(self) -> str:
        return "validate_order_status_form"

    def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        number = str(value or "").upper().lstrip("#")
        if not number.strip("0-ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            texts = SAY.get(tracker.get_slot("language") or "en", SAY["en"])
            dispatcher.utter_message(text=texts["invalid"].format(number=number))
            return {"order_number": None}
        return {"order_number": number}
