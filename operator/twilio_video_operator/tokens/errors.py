"""The one error type of the token service: an HTTP status, a one-word reason and a message."""

from __future__ import annotations


class TokenRequestError(Exception):
    """A refused token request. ``reason`` is one CamelCase word (the ``error`` field of the answer);
    ``message`` is for humans and never contains a secret; ``retry_after`` is in seconds (429, 503)."""

    def __init__(self, status: int, reason: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def bad_request(message: str) -> TokenRequestError:
    return TokenRequestError(400, "BadRequest", message)


def unauthorized(message: str) -> TokenRequestError:
    return TokenRequestError(401, "Unauthorized", message)


def forbidden(reason: str, message: str) -> TokenRequestError:
    return TokenRequestError(403, reason, message)


def room_not_found(namespace: str, room: str) -> TokenRequestError:
    return TokenRequestError(404, "RoomNotFound", f"no VideoRoom {room} in namespace {namespace}")


def unprocessable(reason: str, message: str) -> TokenRequestError:
    return TokenRequestError(422, reason, message)


def unavailable(reason: str, message: str, retry_after: int = 5) -> TokenRequestError:
    return TokenRequestError(503, reason, message, retry_after=retry_after)
