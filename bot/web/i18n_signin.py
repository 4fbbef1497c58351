"""The console's words for two-factor sign-in, in English and Latvian (merged into ``TEXT``)."""

from __future__ import annotations

SIGNIN_TEXT: dict[str, tuple[str, str]] = {
    "security": ("Sign-in security", "Pieteikšanās drošība"),
    "two_factor": ("Two-factor sign-in", "Divpakāpju pieteikšanās"),
    "two_factor_about": (
        "After your password, the console also asks for a six-digit code from an authenticator app on your phone.",
        "Pēc paroles konsole prasa arī sešciparu kodu no autentifikatora lietotnes jūsu tālrunī."),
    "two_factor_on": ("Two-factor sign-in is on.", "Divpakāpju pieteikšanās ir ieslēgta."),
    "two_factor_off": ("Two-factor sign-in is off.", "Divpakāpju pieteikšanās ir izslēgta."),
    "two_factor_set_up": ("Set up two-factor sign-in", "Iestatīt divpakāpju pieteikšanos"),
    "two_factor_required": (
        "Your account requires two-factor sign-in: set it up to continue.",
        "Jūsu kontā divpakāpju pieteikšanās ir obligāta: iestatiet to, lai turpinātu."),
    "scan_qr": (
        "Scan this code with an authenticator app (or type the key below), then enter the six-digit code it shows.",
        "Noskenējiet šo kodu ar autentifikatora lietotni (vai ievadiet zemāk redzamo atslēgu), tad ievadiet tās rādīto sešciparu kodu."),
    "qr_code": ("QR code for the authenticator app", "QR kods autentifikatora lietotnei"),
    "setup_key": ("Key", "Atslēga"),
    "code": ("Code", "Kods"),
    "confirm": ("Confirm", "Apstiprināt"),
    "verify": ("Verify", "Pārbaudīt"),
    "enter_code": (
        "Enter the six-digit code from your authenticator app, or one of your recovery codes.",
        "Ievadiet sešciparu kodu no autentifikatora lietotnes vai vienu no saviem atkopšanas kodiem."),
    "bad_code": ("That code is not right, or was already used.", "Kods nav pareizs vai jau ir izmantots."),
    "login_expired": ("The sign-in took too long. Log in again.", "Pieteikšanās ilga pārāk ilgi. Piesakieties vēlreiz."),
    "recovery_codes": ("Recovery codes", "Atkopšanas kodi"),
    "recovery_codes_about": (
        "Keep these codes somewhere safe: each one signs you in once if you lose your phone. They are shown only now.",
        "Glabājiet šos kodus drošā vietā: katrs no tiem vienreiz ļauj pieteikties, ja pazaudējat tālruni. Tie redzami tikai tagad."),
    "recovery_left": ("Recovery codes left: {n}", "Atlikušie atkopšanas kodi: {n}"),
    "continue": ("Continue to the console", "Turpināt uz konsoli"),
    "two_factor_turn_off": ("Turn off two-factor sign-in", "Izslēgt divpakāpju pieteikšanos"),
    "password_or_code": ("Your password, or a code", "Jūsu parole vai kods"),
    "two_factor_disabled": ("Two-factor sign-in is off now.", "Divpakāpju pieteikšanās tagad ir izslēgta."),
    "two_factor_kept": (
        "Your account requires two-factor sign-in, so it stays on.",
        "Jūsu kontā divpakāpju pieteikšanās ir obligāta, tāpēc tā paliek ieslēgta."),
    "wrong_password_or_code": ("Wrong password or code.", "Nepareiza parole vai kods."),
    "require_two_factor": ("Every agent must use two-factor sign-in", "Visiem aģentiem jāizmanto divpakāpju pieteikšanās"),
    "require_two_factor_about": (
        "Agents without it are asked to set it up right after their password; anyone logged in without it is logged out.",
        "Aģentiem bez tās to liek iestatīt uzreiz pēc paroles; tie, kas pieteikušies bez tās, tiek izrakstīti."),
    "require_two_factor_self": (
        "Turn on two-factor sign-in for yourself first (Sign-in security).",
        "Vispirms ieslēdziet divpakāpju pieteikšanos sev (Pieteikšanās drošība)."),
    "two_factor_column": ("2FA", "2FA"),
    "reset_two_factor": ("Reset 2FA", "Atiestatīt 2FA"),
    "two_factor_reset_done": (
        "Two-factor sign-in of {login} was reset; they are logged out.",
        "Aģenta {login} divpakāpju pieteikšanās atiestatīta; aģents ir izrakstīts."),
    "two_factor_state_on": ("on", "ieslēgta"),
    "two_factor_state_off": ("off", "izslēgta"),
    "two_factor_unreadable": (
        "Your two-factor sign-in cannot be read on this server (its key was changed or its record altered): "
        "ask an admin to reset it.",
        "Jūsu divpakāpju pieteikšanos šajā serverī nevar nolasīt (tās atslēga mainīta vai ieraksts izmainīts): "
        "lūdziet administratoram to atiestatīt."),
    "two_factor_on_already": (
        "Two-factor sign-in is on already: turn it off first.",
        "Divpakāpju pieteikšanās jau ir ieslēgta: vispirms izslēdziet to."),
    "no_setup_pending": (
        "No authenticator is being set up here: start setting up two-factor sign-in first.",
        "Šeit netiek iestatīts neviens autentifikators: vispirms sāciet iestatīt divpakāpju pieteikšanos."),
    "cross_site_login": (
        "Logins from another site's page are refused.", "Pieteikšanās no citas vietnes lapas tiek atteikta."),
    "login_form_expired": (
        "The login form expired: reload the page.", "Pieteikšanās veidlapa ir novecojusi: pārlādējiet lapu."),
    "form_expired": ("The form expired: reload the page.", "Veidlapa ir novecojusi: pārlādējiet lapu."),
}
