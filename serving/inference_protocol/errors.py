"""The one error a client's v2 request can cause: answered 400 ``{"error": message}``."""

from __future__ import annotations


class InferenceRequestError(ValueError):
    """A malformed or invalid inference request; the message names the input at fault.

    ``input_name`` is the offending input when there is one (the ``field`` label of the
    validation-error metric), else None (the body as a whole).
    """

    def __init__(self, message: str, input_name: str | None = None) -> None:
        super().__init__(message)
        self.input_name = input_name
