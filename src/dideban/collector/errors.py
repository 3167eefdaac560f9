"""The collector's one error shape: `{"error": {"code": ..., "message": ...}}` with a 4xx/5xx."""

from __future__ import annotations


class CollectorError(Exception):
    """A request the collector refuses; nothing was written for it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
