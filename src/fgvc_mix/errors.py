"""Errors a user can fix: the message names the option or file and says what to do.

The entry points print such an error as that one message, without a traceback
(``config.one_line_user_errors``); everything else keeps its traceback, since it is
a bug to report rather than a setting to change.
"""

from __future__ import annotations


class UserError(ValueError):
    """A wrong option, file or checkpoint; the message is the whole story."""


class MissingFileError(FileNotFoundError, UserError):
    """A file the user named (a checkpoint, weights) does not exist."""


class WeightsUnavailableError(OSError, UserError):
    """Pretrained weights could not be downloaded (offline machine); the message says how to go on."""
