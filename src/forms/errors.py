"""What the user sees when a command fails: exceptions that carry a message meant for them, and Ctrl-C.

The CLI prints these exceptions as one paragraph without a traceback and exits non-zero; any other
exception is a bug. A command stopped by Ctrl-C says "interrupted" and exits with status 130.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

INTERRUPTED_STATUS = 130
"""Exit status of a command stopped by Ctrl-C: 128 + SIGINT, what shells report for it."""


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


def exit_interrupted() -> NoReturn:
    """Exit with :data:`INTERRUPTED_STATUS`, saying "interrupted" on stderr (one line).

    A worker process started by torchrun (``forms ... --nproc N``) stays silent: its launcher, which got
    the same Ctrl-C, says it once for all of them.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        print("interrupted", file=sys.stderr, flush=True)
    sys.exit(INTERRUPTED_STATUS)
