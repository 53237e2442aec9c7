"""The root of the errors a user can cause by what they pass: data, a file, a setting, a device.

The experiment scripts print a ``UserError`` as one line and exit with status 2
(``experiments.lib.cli.cli``); any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error in what the user gave: its message says what was wrong and, where it can, what to
    do."""
