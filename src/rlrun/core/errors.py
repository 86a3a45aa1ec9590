"""User-facing errors.

Everything a user can fix (a bad option, an impossible pairing, a missing file, no GPU)
raises an `RlrunError`; `rlrun.cli` prints it as one line and exits with code 2. Anything
else is a bug and keeps its traceback.
"""


class RlrunError(Exception):
    """Base class: a problem the user can fix; its message says how."""


class ConfigError(RlrunError):
    """A value is of the wrong type or out of range."""


class PairingError(RlrunError):
    """The algorithm cannot learn from the chosen task."""


class DeviceError(RlrunError):
    """The requested device is not available."""


class CheckpointError(RlrunError):
    """A checkpoint or run directory cannot be read or resumed."""


class DataError(RlrunError):
    """A data file is missing or malformed."""


class NonFiniteError(RlrunError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
