"""The one error taxonomy of mnist-live, mapped to HTTP statuses and WebSocket error frames once.

Class tree (``code`` / HTTP status)::

    MnistLiveError                         internal_error / 500
    ├── ClientError                        bad_request / 400   (anything a client sent)
    │   ├── InvalidJSON                    invalid_json / 400
    │   ├── MissingField                   missing_field / 422
    │   ├── InvalidFieldType               invalid_field_type / 422
    │   ├── InvalidBase64                  invalid_base64 / 400
    │   ├── EmptyImage                     empty_image / 400
    │   ├── NotAnImage                     not_an_image / 415
    │   ├── InvalidImage                   invalid_image / 422
    │   ├── TruncatedImage                 truncated_image / 422
    │   ├── ImageTooLarge                  image_too_large / 413
    │   ├── PayloadTooLarge                payload_too_large / 413
    │   ├── InvalidStrokes                 invalid_strokes / 422
    │   ├── UnknownAction                  unknown_action / 400
    │   ├── UnsupportedMediaType           unsupported_media_type / 415
    │   ├── NotFound                       not_found / 404
    │   ├── MethodNotAllowed               method_not_allowed / 405
    │   ├── RequestTimeout                 request_timeout / 408
    │   ├── Unauthorized                   unauthorized / 401
    │   ├── ForbiddenOrigin                forbidden_origin / 403
    │   └── RateLimited                    rate_limited / 429
    └── ServerError                        internal_error / 500 (never the client's fault)
        └── ModelError                     model_unavailable / 503

Messages are one sentence of at most 300 characters and never echo submitted data. Foreign exceptions
(Pillow, binascii, onnxruntime) are translated where they are caught and chained with ``raise ... from``.
Adapters map an exception to a response with :func:`http_status` and :meth:`MnistLiveError.to_dict`.
"""

from __future__ import annotations

from typing import Any, ClassVar

MAX_MESSAGE_CHARS = 300
"""Longest error message sent to a client, in characters."""


class MnistLiveError(Exception):
    """Base class of every error mnist-live raises on purpose.

    Attributes:
        code: Stable machine-readable identifier, part of the public protocol (``docs/protocol.md``).
        http_status: Status an HTTP adapter answers with.
        message: One human-readable sentence, at most :data:`MAX_MESSAGE_CHARS` characters.
    """

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "The server failed to handle the request."

    def __init__(self, message: str | None = None) -> None:
        text = message or self.default_message
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        self.message = text
        super().__init__(text)

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form ``{"code": str, "message": str}`` used by HTTP and WebSocket."""
        return {"code": self.code, "message": self.message}


class ClientError(MnistLiveError):
    """The request is wrong; the client can fix it. Always a 4xx, never logged as a server fault."""

    code = "bad_request"
    http_status = 400
    default_message = "The request is not valid."


class InvalidJSON(ClientError):
    """The body or message is not a JSON object."""

    code = "invalid_json"
    http_status = 400
    default_message = "The message is not a valid JSON object."


class MissingField(ClientError):
    """A required field is absent."""

    code = "missing_field"
    http_status = 422
    default_message = "A required field is missing."


class InvalidFieldType(ClientError):
    """A field has the wrong JSON type or an out-of-range value."""

    code = "invalid_field_type"
    http_status = 422
    default_message = "A field has the wrong type or value."


class InvalidBase64(ClientError):
    """The image text is not valid base64 (optionally behind a ``data:`` URL prefix)."""

    code = "invalid_base64"
    http_status = 400
    default_message = "The image is not valid base64."


class EmptyImage(ClientError):
    """The image holds zero bytes."""

    code = "empty_image"
    http_status = 400
    default_message = "The image is empty."


class NotAnImage(ClientError):
    """The bytes are not a supported image format, or a ``data:`` URL names a non-image media type."""

    code = "not_an_image"
    http_status = 415
    default_message = "The data is not a supported image (PNG, JPEG, WebP, GIF or BMP)."


class InvalidImage(ClientError):
    """The image's header is impossible (e.g. zero width) or its data is corrupt."""

    code = "invalid_image"
    http_status = 422
    default_message = "The image header or data is invalid."


class TruncatedImage(ClientError):
    """The image data ends before the header says it should."""

    code = "truncated_image"
    http_status = 422
    default_message = "The image data is truncated."


class ImageTooLarge(ClientError):
    """The image declares more pixels than allowed; refused before decoding (decompression bombs)."""

    code = "image_too_large"
    http_status = 413
    default_message = "The image has too many pixels."


class PayloadTooLarge(ClientError):
    """The encoded payload or message exceeds the byte limit."""

    code = "payload_too_large"
    http_status = 413
    default_message = "The payload is too large."


class InvalidStrokes(ClientError):
    """The stroke list is malformed, non-finite, out of range or over the stroke/point limits."""

    code = "invalid_strokes"
    http_status = 422
    default_message = "The strokes are not valid."


class UnknownAction(ClientError):
    """A WebSocket message's ``action`` is missing or not one of the protocol's actions."""

    code = "unknown_action"
    http_status = 400
    default_message = "The action is missing or unknown."


class UnsupportedMediaType(ClientError):
    """An HTTP body's Content-Type is not JSON, ``image/*`` or ``multipart/form-data``."""

    code = "unsupported_media_type"
    http_status = 415
    default_message = "Send JSON, an image/* body or a multipart file upload."


class NotFound(ClientError):
    """No such route or method."""

    code = "not_found"
    http_status = 404
    default_message = "There is nothing at this path."


class MethodNotAllowed(ClientError):
    """The path exists but not for this HTTP method."""

    code = "method_not_allowed"
    http_status = 405
    default_message = "This method is not allowed here."


class RequestTimeout(ClientError):
    """The client sent its body too slowly (slowloris)."""

    code = "request_timeout"
    http_status = 408
    default_message = "The request body arrived too slowly."


class Unauthorized(ClientError):
    """A required token is missing or wrong."""

    code = "unauthorized"
    http_status = 401
    default_message = "A valid token is required."


class ForbiddenOrigin(ClientError):
    """The request's Origin is not in the allowlist (cross-site WebSocket hijacking defence)."""

    code = "forbidden_origin"
    http_status = 403
    default_message = "This origin is not allowed."


class RateLimited(ClientError):
    """The client sent more frames per second than allowed; the frame was dropped."""

    code = "rate_limited"
    http_status = 429
    default_message = "Too many frames; slow down."


class ServerError(MnistLiveError):
    """The server failed; not the client's fault."""


class ModelError(ServerError):
    """The model file is missing, has the wrong input/output contract, or inference failed."""

    code = "model_unavailable"
    http_status = 503
    default_message = "The model is not available."


def http_status(error: BaseException) -> int:
    """Return the HTTP status for any exception: the class's status, or 500 for foreign exceptions."""
    return error.http_status if isinstance(error, MnistLiveError) else 500


def all_codes() -> dict[str, int]:
    """Return every error ``code`` mapped to its HTTP status, walking the class tree."""
    out: dict[str, int] = {}
    stack: list[type[MnistLiveError]] = [MnistLiveError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls.http_status)
        stack.extend(cls.__subclasses__())
    return out
