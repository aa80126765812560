"""The one error the drafter raises for the user's data or flags."""

from __future__ import annotations


class DraftError(ValueError):
    """The file cannot be drafted; ``exit_code`` 2 asks the user for a flag (``--target``,
    ``--timestamp``, ``--columns``), 1 is anything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
