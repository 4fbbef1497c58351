"""The web chat's own pages beside its channel: the words the chat page shows, in the visitor's
language. (The page and its socket are the webchat channel's.)"""
