"""One module per channel, each implementing the adapter protocol of ``base``."""
