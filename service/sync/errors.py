"""Errors of outbound FHIR calls, split by what the worker does about them."""

from __future__ import annotations


class TargetError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TemporaryError(TargetError):
    """Try again later (transport error, 408, 429, 5xx); `retry_after` from the server if given."""

    def __init__(self, status: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class PermanentError(TargetError):
    """The target refused the request for good (4xx); `message` is its OperationOutcome text."""


class FatalTargetError(Exception):
    """The target is misconfigured (auth refused, no key, no such target): stop the worker."""
