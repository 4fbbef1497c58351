"""The bot's conversation beyond one-shot answers: its state on the thread, forms that collect
slots, and custom actions over Rasa's action server protocol (docs/dialogue.md)."""
