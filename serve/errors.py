"""Errors the serving engine raises for a request, each with the HTTP status and OpenAI error code it maps to.

The HTTP API turns them into ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape);
the UI shows ``message``.
"""

from __future__ import annotations


class ServeError(ValueError):
    """A request the server cannot serve; ``status`` is its HTTP status."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or "invalid_request"


class InputError(ServeError):
    """Bad input: a field, a value, a file (HTTP 400)."""


class UnknownVoice(InputError):
    """A voice that is neither a speaker of the checkpoint nor a voice file (HTTP 400)."""

    def __init__(self, message: str):
        super().__init__(message, param="voice", code="unknown_voice")


class EngineBusy(ServeError):
    """No generation slot became free in time (HTTP 503)."""

    status = 503
    type = "server_error"

    def __init__(self, message: str):
        super().__init__(message, code="server_busy")


class GenerationTimeout(ServeError):
    """A reply ran past ``generation_timeout_s`` and was stopped (HTTP 504)."""

    status = 504
    type = "server_error"

    def __init__(self, message: str):
        super().__init__(message, code="generation_timeout")


class TooManyRequests(ServeError):
    """One client has too many requests in flight (HTTP 429)."""

    status = 429

    def __init__(self, message: str):
        super().__init__(message, code="too_many_requests")
