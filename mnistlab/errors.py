"""The one base of every error the library raises on purpose.

Each module defines its own errors (``arch.SpecError``, ``train.ConfigError``, ``checkpoint.CheckpointError``, ...)
under ``MnistLabError``, and every message is written for the person who caused it. A caller that only needs to
know "a user's input was refused" catches ``MnistLabError`` and shows the message; nothing branches on the text.
"""


class MnistLabError(ValueError):
    """Something a user asked for cannot be done; ``str(error)`` says why in their words."""
