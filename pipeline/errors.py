"""Errors a user can act on. The CLI prints them as one line (no traceback) and exits non-zero."""


class CgankdError(Exception):
    """Base class: a problem with the user's input, files or configuration."""

    exit_code = 1


class ParamsError(CgankdError):
    """params.yaml (or an override) has a bad key, type or value. Message names the key path."""

    exit_code = 2


class DataError(CgankdError):
    """A data file is missing or malformed. Message names the path and the expected layout."""


class CheckpointError(CgankdError):
    """A checkpoint is missing, truncated or not a plain state-dict checkpoint."""
