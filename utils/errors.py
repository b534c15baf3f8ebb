"""Errors caused by the user's input (config, CLI, files).

`train.py` turns any `UserError` into a one-line message on stderr and exit
code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message must name the offending key or file."""


class ConfigError(UserError):
    """A config value or CLI flag is wrong."""


class DataError(UserError):
    """A dataset or label file is missing, corrupt or of the wrong shape."""


class CheckpointError(UserError):
    """A checkpoint cannot be used: missing, corrupt, unsafe or incompatible."""
