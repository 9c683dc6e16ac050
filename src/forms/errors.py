"""Exceptions that carry a message meant for the user: what is wrong and how to fix it.

The CLI prints these without a traceback and exits non-zero; any other exception is a bug.
"""


class FormsError(Exception):
    """Base class of every user-facing FORMS error."""


class ConfigError(FormsError, ValueError):
    """A configuration file or option is malformed or names an impossible combination."""


class DataError(FormsError):
    """A dataset file is missing or corrupt."""


class CheckpointError(FormsError):
    """A checkpoint is missing, corrupt, or belongs to a different model or stage."""


class UnsupportedLayerError(FormsError, TypeError):
    """A model holds a layer the crossbar mapping cannot place."""
