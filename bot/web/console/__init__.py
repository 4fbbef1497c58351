"""The agents' console: sign-in (password, second factor, throttling, sessions), the agent's own
security page, the inbox and thread views with their actions, and the live feed."""
