"""Console words of the reports, audit log, personal-data and retention pages (English, Latvian);
merged into ``bot.web.i18n.TEXT``."""

from __future__ import annotations

DATA_TEXT: dict[str, tuple[str, str]] = {
    "admin_settings": ("Agents & settings", "Aģenti un iestatījumi"),
    "reports": ("Reports", "Pārskati"),
    "audit_log": ("Audit log", "Audita žurnāls"),
    "personal_data": ("Personal data", "Personas dati"),
    "retention": ("Data retention", "Datu glabāšana"),
    "retention_now": ("Messages older than {days} days are deleted.", "Ziņas, kas vecākas par {days} dienām, tiek dzēstas."),
    "retention_forever": ("Messages are kept with no time limit.", "Ziņas tiek glabātas bez termiņa ierobežojuma."),
    "retention_days": ("Keep messages for (days)", "Glabāt ziņas (dienas)"),
    "retention_hint": (
        "Empty: the installation's default ({days}); 0: keep for ever. A scheduled job deletes older "
        "messages and what was derived from them.",
        "Tukšs: instalācijas noklusējums ({days}); 0: glabāt bez termiņa. Plānots uzdevums dzēš vecākas "
        "ziņas un no tām atvasinātos datus.",
    ),
    "report_scope": (
        "Conversations opened in the period (UTC days) in account {account}; shifts started in it.",
        "Periodā atvērtās sarunas (UTC dienas) kontā {account}; tajā sāktās maiņas.",
    ),
    "conversations": ("Conversations", "Sarunas"),
    "containment": ("Bot containment", "Bota apstrādātās sarunas"),
    "contained": ("bot only", "tikai bots"),
    "escalated": ("handed to humans", "nodotas cilvēkiem"),
    "containment_hint": (
        "{contained} never reached the human queue; {resolved} of them are resolved.",
        "{contained} nekad nenonāca cilvēku rindā; {resolved} no tām ir atrisinātas.",
    ),
    "timing_queue_wait": ("Queue wait", "Gaidīšana rindā"),
    "timing_first_response": ("First response", "Pirmā atbilde"),
    "timing_resolution": ("Resolution", "Atrisināšana"),
    "timings": ("Response times", "Atbildes laiki"),
    "median": ("median", "mediāna"),
    "mean": ("mean", "vidēji"),
    "count": ("count", "skaits"),
    "sla_breaches": ("SLA breaches", "SLA pārkāpumi"),
    "sla_first": ("First response later than {minutes} min", "Pirmā atbilde vēlāk par {minutes} min"),
    "sla_unanswered": ("of which still unanswered", "no tām vēl neatbildētas"),
    "sla_next": ("Late next responses", "Novēlotas nākamās atbildes"),
    "by_channel": ("Conversations by channel", "Sarunas pa kanāliem"),
    "by_day": ("Conversations per day", "Sarunas dienā"),
    "escalation_reasons": ("Escalation reasons", "Nodošanas iemesli"),
    "resolved": ("Resolved", "Atrisinātas"),
    "handling_mean": ("Handling time (mean)", "Apstrādes laiks (vidēji)"),
    "handling_total": ("Handling time (total)", "Apstrādes laiks (kopā)"),
    "shift_hours": ("Shift hours", "Maiņu stundas"),
    "agent_volume": ("Conversations per agent", "Sarunas uz aģentu"),
    "everyone": ("everyone", "visi"),
    "action": ("Action", "Darbība"),
    "every_action": ("every action", "visas darbības"),
    "when": ("When", "Kad"),
    "who": ("Who", "Kas"),
    "record": ("Record", "Ieraksts"),
    "details": ("Details", "Detaļas"),
    "audit_empty": ("Nothing recorded for this filter.", "Šim filtram nekas nav reģistrēts."),
    "newer": ("Newer", "Jaunāki"),
    "older": ("Older", "Vecāki"),
    "page": ("page {n}", "{n}. lapa"),
    "contact_search": ("Contact id, channel:address, address or name", "Kontakta ID, kanāls:adrese, adrese vai vārds"),
    "find": ("Find", "Meklēt"),
    "no_contact": ("No contact found.", "Kontakts nav atrasts."),
    "contact_id": ("Contact id", "Kontakta ID"),
    "identities": ("Identities", "Identitātes"),
    "messages": ("Messages", "Ziņas"),
    "export_json": ("Export everything (JSON)", "Eksportēt visu (JSON)"),
    "erase_warning": (
        "Erasing removes this person's messages, notes, identities and training examples everywhere and "
        "anonymises their conversations. It cannot be undone.",
        "Dzēšana visur izņem šīs personas ziņas, piezīmes, identitātes un apmācības piemērus un anonimizē "
        "viņas sarunas. To nevar atsaukt.",
    ),
    "erase_confirm": ("Type {id} to confirm", "Ierakstiet {id}, lai apstiprinātu"),
    "erase": ("Erase contact", "Dzēst kontaktu"),
    "erased": ("Contact erased ({n} records). Receipt: {receipt}", "Kontakts dzēsts ({n} ieraksti). Kvīts: {receipt}"),
}
