"""Admin pages: agents and routing settings, the account page, the accounts page (superadmin),
intents and training, privacy, reports and their charts."""
