"""Error types the engine raises for bad input; the CLI maps each to a one-line message and exit code."""


class UdlError(Exception):
    """A problem the user can fix. The message names what was wrong and how to fix it."""

    exit_code = 1


class SpecError(UdlError):
    """A run spec (YAML file, CLI flag or --set override) is invalid."""

    exit_code = 2


class DataError(UdlError):
    """A dataset could not be found, read or understood."""


class CheckpointError(UdlError):
    """A checkpoint or run folder is missing, corrupt or of the wrong kind."""


class DeviceError(UdlError):
    """The requested device is not available."""

    exit_code = 2


class DistributedError(UdlError):
    """A job of several ranks could not start (a port in use) or lost a rank; the last checkpoint is kept."""


class TrainingDiverged(UdlError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Interrupted(UdlError):
    """The user pressed Ctrl-C; state was saved and the run can be resumed."""

    exit_code = 130


# ---------------------------------------------------------------- wording shared by the messages


def shorten(text: str, width: int = 120) -> str:
    """The first line of text, cut at a word boundary with an ellipsis when longer than width: never mid-word."""
    line = (text.strip().splitlines() or [""])[0]
    if len(line) <= width:
        return line
    cut = line[:width].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " …"
