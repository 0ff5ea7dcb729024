"""A Server-Sent Events parser (the WHATWG event stream format), fed one line at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class SseMessage:
    """One dispatched event: its type (`event:`, default "message"), its data (the `data:` lines joined by
    newlines) and the last event id in force when it was dispatched (`id:`, kept across events)."""

    event: str
    data: str
    last_id: Optional[str]


class SseParser:
    """Feed it the lines of a stream (without their line terminator); it returns an `SseMessage` at each blank
    line that ends an event with data. Comments (`:`) are counted, `retry:` is kept."""

    def __init__(self) -> None:
        self.last_id: Optional[str] = None
        self.retry_ms: Optional[int] = None
        self.comments = 0
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Optional[SseMessage]:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            message = SseMessage(self._event or "message", "\n".join(self._data), self.last_id)
            self._event = ""
            self._data = []
            return message
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None
