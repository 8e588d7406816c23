"""Errors the harness reports to users as one line (the CLI turns them into exit status 2)."""


class EvalError(Exception):
    """A user-facing failure: bad option, missing folder, no results."""


class DatasetError(EvalError):
    """Malformed or missing dataset input; the message names the file (and line)."""

    def __init__(self, message, path=None, line=None):
        # Prefix "file:line:" like a compiler so editors and humans jump straight to it.
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
