"""The web chat: a page and a socket served by the router itself."""
