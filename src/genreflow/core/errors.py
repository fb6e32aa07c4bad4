"""The exceptions genreflow raises on purpose.

Everything the user can cause (a bad config, a missing folder, an unreadable clip) is a
:class:`GenreflowError`; the CLI prints its message on one line and exits non-zero.
Anything else is a bug and keeps its traceback.
"""


class GenreflowError(Exception):
    """Base class: an error whose message is meant for the user."""


class ConfigError(GenreflowError):
    """The configuration is invalid (names the key, the value and what is allowed)."""


class DatasetError(GenreflowError):
    """The dataset or manifest cannot be used (missing folder, bad CSV, no clips)."""


class AudioError(GenreflowError):
    """One audio file cannot be used; the message starts with its path and gives the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class StageError(GenreflowError):
    """A pipeline stage failed as a whole (too many bad files, missing inputs)."""


class DiskFullError(StageError):
    """An output could not be written: its file system is full (or the user's quota is spent).

    The message names the file and the space left; what the stage finished before stays.
    """


class ModelError(GenreflowError):
    """A model directory is missing, incomplete or inconsistent with its inputs."""
