"""Typed domain errors; the web layer maps them to HTTP status codes and JSON `{code, message}`."""


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class NotFound(DomainError):
    code, status = "not_found", 404


class Conflict(DomainError):
    code, status = "conflict", 409


class InvalidTransition(DomainError):
    code, status = "invalid_transition", 409


class ValidationFailed(DomainError):
    code, status = "validation_failed", 422


class Forbidden(DomainError):
    code, status = "forbidden", 403
