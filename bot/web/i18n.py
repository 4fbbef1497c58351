"""The console's words in English and Latvian. Templates call ``_("key")``; a missing Latvian
text falls back to English, a missing key shows the key (a test checks that none is missing)."""

from __future__ import annotations

from bot.web.i18n_tenants import TENANT_TEXT
from bot.web.i18n_data import DATA_TEXT
from bot.web.i18n_signin import SIGNIN_TEXT
from bot.web.i18n_training import TRAINING_TEXT

LANGUAGES = ("en", "lv")

TEXT: dict[str, tuple[str, str]] = {
    "console": ("Console", "Konsole"),
    "admin": ("Admin", "Administrēšana"),
    "login": ("Log in", "Pieteikties"),
    "logout": ("Log out", "Iziet"),
    "login_name": ("Login", "Lietotājvārds"),
    "password": ("Password", "Parole"),
    "bad_login": ("Wrong login or password.", "Nepareizs lietotājvārds vai parole."),
    "too_many": ("Too many attempts. Try again in {s} s.", "Pārāk daudz mēģinājumu. Mēģiniet vēlreiz pēc {s} s."),
    "session_ended": ("Your session ended. Log in again.", "Sesija beigusies. Piesakieties vēlreiz."),
    "queue": ("Queue", "Rinda"),
    "mine": ("My conversations", "Manas sarunas"),
    "take": ("Take", "Ņemt"),
    "take_next": ("Take next", "Ņemt nākamo"),
    "queue_empty": ("Nobody is waiting.", "Neviens negaida."),
    "mine_empty": ("You have no open conversations.", "Jums nav atvērtu sarunu."),
    "waiting": ("waiting", "gaida"),
    "reason": ("reason", "iemesls"),
    "team": ("Team", "Komanda"),
    "priority": ("priority", "prioritāte"),
    "sla_due": ("due", "termiņš"),
    "sla_breached": ("breached", "nokavēts"),
    "first_response": ("first response", "pirmā atbilde"),
    "next_response": ("next response", "nākamā atbilde"),
    "start_shift": ("Start shift", "Sākt maiņu"),
    "stop_shift": ("End shift", "Beigt maiņu"),
    "away": ("Away", "Prom"),
    "back": ("Back", "Atpakaļ"),
    "online": ("online", "tiešsaistē"),
    "offline": ("offline", "bezsaistē"),
    "load": ("{load} of {capacity}", "{load} no {capacity}"),
    "pick_thread": ("Pick a conversation from the queue or from your list.", "Izvēlieties sarunu no rindas vai sava saraksta."),
    "reply": ("Reply", "Atbildēt"),
    "send": ("Send", "Sūtīt"),
    "reply_placeholder": ("Write a reply… type / for canned responses", "Rakstiet atbildi… / sagatavotajām atbildēm"),
    "note": ("Private note", "Privāta piezīme"),
    "add_note": ("Add note", "Pievienot piezīmi"),
    "note_placeholder": ("Only agents see notes", "Piezīmes redz tikai aģenti"),
    "labels": ("Labels", "Birkas"),
    "save": ("Save", "Saglabāt"),
    "transfer": ("Transfer", "Nodot"),
    "to_agent": ("to agent", "aģentam"),
    "to_team": ("to team", "komandai"),
    "nobody": ("—", "—"),
    "resolve": ("Resolve", "Atrisināt"),
    "status": ("Status", "Statuss"),
    "assigned_to": ("assigned to", "piešķirts"),
    "customer": ("Customer", "Klients"),
    "bot": ("Bot", "Bots"),
    "agent": ("Agent", "Aģents"),
    "system": ("System", "Sistēma"),
    "intent": ("intent", "nolūks"),
    "subject": ("Subject", "Temats"),
    "attachments": ("Attachments", "Pielikumi"),
    "delivery_queued": ("queued", "rindā"),
    "delivery_sent": ("sent", "nosūtīts"),
    "delivery_delivered": ("delivered", "piegādāts"),
    "delivery_read": ("read", "izlasīts"),
    "delivery_failed": ("failed", "neizdevās"),
    "tl_note": ("Note", "Piezīme"),
    "tl_queued": ("Queued", "Ievietots rindā"),
    "tl_assigned": ("Assigned to", "Piešķirts"),
    "tl_transferred": ("Transferred", "Nodots"),
    "tl_resolved": ("Resolved", "Atrisināts"),
    "tl_reopened": ("Reopened", "Atvērts no jauna"),
    "tl_labels": ("Labels set", "Birkas mainītas"),
    "wa_window_open": ("WhatsApp 24-hour window open until {t}", "WhatsApp 24 stundu logs atvērts līdz {t}"),
    "wa_window_closed": ("WhatsApp 24-hour window is closed: only a template can be sent.", "WhatsApp 24 stundu logs ir slēgts: var sūtīt tikai veidni."),
    "template": ("Template", "Veidne"),
    "send_template": ("Send template", "Sūtīt veidni"),
    "no_templates": ("No templates are available for this channel.", "Šim kanālam nav pieejamu veidņu."),
    "template_parameters": ("Parameters (comma-separated)", "Parametri (atdalīti ar komatu)"),
    "new_assignment": ("New conversation", "Jauna saruna"),
    "agents": ("Agents", "Aģenti"),
    "add_agent": ("Add agent", "Pievienot aģentu"),
    "name": ("Name", "Vārds"),
    "role": ("Role", "Loma"),
    "teams": ("Teams", "Komandas"),
    "capacity": ("Capacity", "Kapacitāte"),
    "presence": ("Presence", "Klātbūtne"),
    "agent_added": ("Agent {login} added. Their password, shown only this once:", "Aģents {login} pievienots. Parole, redzama tikai šoreiz:"),
    "login_taken": ("That login is taken.", "Šis lietotājvārds ir aizņemts."),
    "timesheet": ("Timesheet", "Darba laika uzskaite"),
    "export_csv": ("Export CSV", "Eksportēt CSV"),
    "from": ("From", "No"),
    "until": ("Until", "Līdz"),
    "started": ("Started", "Sākums"),
    "ended": ("Ended", "Beigas"),
    "duration": ("Duration", "Ilgums"),
    "location": ("Location", "Atrašanās vieta"),
    "show": ("Show", "Rādīt"),
    "settings": ("Routing", "Maršrutēšana"),
    "strategy": ("Strategy", "Stratēģija"),
    "strategy_manual": ("manual: agents pick", "manuāli: aģenti izvēlas"),
    "strategy_next": ("next: agents ask for the next", "nākamais: aģenti pieprasa nākamo"),
    "strategy_auto": ("auto: least-loaded agent", "automātiski: mazāk noslogotais aģents"),
    "business_hours": ("Business hours", "Darba laiks"),
    "timezone": ("Time zone", "Laika josla"),
    "out_of_hours_reply": ("Out-of-hours reply", "Atbilde ārpus darba laika"),
    "record_location": ("Record location at shift start and stop", "Saglabāt atrašanās vietu maiņas sākumā un beigās"),
    "saved": ("Saved.", "Saglabāts."),
    "canned": ("Canned responses", "Sagatavotās atbildes"),
    "shortcut": ("Shortcut", "Saīsne"),
    "text": ("Text", "Teksts"),
    "delete": ("Delete", "Dzēst"),
    "forbidden": ("Only admins may open this page.", "Šo lapu var atvērt tikai administratori."),
    "forbidden_superadmin": ("Only the install's superadmin may open this page.",
                             "Šo lapu var atvērt tikai instalācijas superadministrators."),
    "history": ("Conversation history", "Sarunas vēsture"),
    "channel": ("Channel", "Kanāls"),
    "language": ("Language", "Valoda"),
}

TEXT.update(TENANT_TEXT)
TEXT.update(DATA_TEXT)
TEXT.update(TRAINING_TEXT)
TEXT.update(SIGNIN_TEXT)


def translate(lang: str, key: str, **values: object) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "lv" and pair[1] else pair[0]
    return text.format(**values) if values else text


def pick_language(requested: str | None, fallback: str) -> str:
    return requested if requested in LANGUAGES else fallback
