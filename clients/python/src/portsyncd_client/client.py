"""The portsyncd event client: WebSocket first, Server-Sent Events when the WebSocket is refused, polling of
`/v1/ports` when both are; exponential backoff between reconnects; resume by the last event id.

Every stream the daemon serves is a snapshot of the current port states, a `sync` event, then live events; a
client that comes back with the id of the last event it got receives exactly the events it missed, or `reset`
and a fresh snapshot when the id is from another run of the daemon (epoch) or too old. This client keeps that
id, keeps a view of every port's state (`PortsyncClient.ports`) and hands each event to the caller.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as ws_connect

from .sse import SseParser

__all__ = [
    "Event",
    "FatalError",
    "PortsyncClient",
    "SocketFactory",
    "Status",
    "TRANSPORTS",
]

TRANSPORTS = ("ws", "sse", "poll")

# The fields of a port's state that make a polled port "changed" (trace ids and times change with every message).
STATE_FIELDS = ("admin", "oper", "mtu", "carrier_changes", "ifindex")

# Answers that no other transport and no retry can fix: a bad filter, a missing or wrong token.
FATAL_STATUSES = (400, 401, 403)

SocketFactory = Callable[[str, int, float], socket.socket]
"""Makes a connected TCP socket: `factory(host, port, timeout)`. The default is `socket.create_connection`; a
test passes one that connects from inside a network namespace."""

log = logging.getLogger("portsyncd_client")


class FatalError(Exception):
    """The daemon refused the request in a way no retry and no other transport can fix (HTTP 400: the filter is
    invalid; 401/403: the token is missing or wrong). The message is the daemon's."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class _Refused(Exception):
    """A transport could not be opened; the next one is tried."""


@dataclass(frozen=True)
class Event:
    """One event, as the daemon sent it (`transport` "ws" or "sse"), or made from two polls of `/v1/ports`
    (`transport` "poll", `synthetic` true, no id)."""

    type: str
    data: dict
    transport: str
    id: Optional[str] = None
    port: Optional[str] = None
    priority: Optional[str] = None
    time_ms: Optional[int] = None
    synthetic: bool = False

    @classmethod
    def from_wire(cls, obj: dict, transport: str, fallback_id: Optional[str] = None) -> "Event":
        return cls(type=str(obj.get("type", "message")), data=obj.get("data") or {}, transport=transport,
                   id=obj.get("id", fallback_id), port=obj.get("port"), priority=obj.get("priority"),
                   time_ms=obj.get("time_ms"))

    def to_dict(self) -> dict:
        """The daemon's JSON form of the event plus `transport` (and `synthetic` for polled events)."""
        out: dict[str, Any] = {"type": self.type}
        if self.id is not None:
            out["id"] = self.id
        if self.port is not None:
            out["port"] = self.port
        if self.priority is not None:
            out["priority"] = self.priority
        if self.time_ms is not None:
            out["time_ms"] = self.time_ms
        out["data"] = self.data
        out["transport"] = self.transport
        if self.synthetic:
            out["synthetic"] = True
        return out


@dataclass(frozen=True)
class Status:
    """One step of the connection life: `refused` or `connected` (one transport tried in reconnect round
    `attempt`), `ended` (a connected transport's session ended, with why) and `backoff` (the wait before the next
    round, in seconds)."""

    kind: str
    attempt: int
    transport: Optional[str] = None
    url: Optional[str] = None
    reason: str = ""
    delay: Optional[float] = None

    def __str__(self) -> str:
        if self.kind == "backoff":
            return f"backoff {self.delay:g} s before attempt {self.attempt + 1}"
        if self.kind == "ended":
            return f"attempt {self.attempt}: {self.transport} session ended: {self.reason}"
        text = f"attempt {self.attempt}: {self.transport} {self.url} {self.kind}"
        return f"{text}: {self.reason}" if self.reason else text


class _Session:
    """One open transport: an iterator of events, closable from any thread."""

    def __init__(self, events: Iterator[Event], close: Callable[[], None]):
        self.events = events
        self._close = close
        self.end_reason = "closed by the daemon"

    def close(self) -> None:
        try:
            self._close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


class PortsyncClient:
    """A portsyncd event client.

    Iterate over it (or call `run(callback)`) to get `Event`s, for ever: it connects by WebSocket, falls back to
    SSE when the WebSocket is refused (HTTP 404 or 503, connection refused, a failed handshake), then to polling
    `/v1/ports` every `poll_interval` seconds (emitting a synthetic `port_state` for each port whose state differs
    from the previous poll, a synthetic `port_deleted` for a port gone, and a `sync` after the first poll). When a
    connection ends, or every transport is refused, it waits `backoff_initial` seconds, doubled at each failed
    round up to `backoff_max`, and starts again with the WebSocket, resuming after the last event id it got. A
    session that delivered something resets the backoff. Polling gives way to a new round every
    `stream_retry_interval` seconds, to get back to a stream.

    `reset` drops the port view (a fresh snapshot follows); `shutdown` ends the session (reconnect with backoff).
    `stop()`, from any thread, ends the iteration. `FatalError` ends it when the SSE stream or `/v1/ports` answers
    HTTP 400 (a bad filter), 401 or 403 (the token); a refused WebSocket upgrade only moves on to SSE.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:9470",
        *,
        events: Optional[Iterable[str]] = None,
        ports: Optional[Iterable[str]] = None,
        token: Optional[str] = None,
        transports: Sequence[str] = TRANSPORTS,
        last_event_id: Optional[str] = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        jitter: float = 0.0,
        poll_interval: float = 2.0,
        stream_retry_interval: float = 60.0,
        read_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        socket_factory: Optional[SocketFactory] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        on_status: Optional[Callable[[Status], None]] = None,
        history: int = 1000,
    ):
        parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        scheme = {"ws": "http", "wss": "https"}.get(parsed.scheme, parsed.scheme)
        if scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        unknown = [t for t in transports if t not in TRANSPORTS]
        if unknown or not transports:
            raise ValueError(f"transports must be among {', '.join(TRANSPORTS)}; got {list(transports)}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("backoff_initial must be > 0 and <= backoff_max")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.tls = scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.tls else 80)
        self.prefix = parsed.path.rstrip("/")
        self.event_types = _items(events)
        self.port_patterns = _items(ports)
        self.token = token or None
        self.transports = tuple(transports)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.poll_interval = poll_interval
        self.stream_retry_interval = stream_retry_interval
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.socket_factory = socket_factory or (lambda host, port, timeout: socket.create_connection(
            (host, port), timeout=timeout))
        self.ssl_context = ssl_context or (ssl.create_default_context() if self.tls else None)
        self.on_status = on_status
        self.history: deque[Status] = deque(maxlen=history)
        self._last_event_id = last_event_id
        self._epoch = last_event_id.rsplit("-", 1)[0] if last_event_id and "-" in last_event_id else None
        self._ports: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._session: Optional[_Session] = None
        self.transport: Optional[str] = None
        self.server_retry_ms: Optional[int] = None

    # ---- what the caller reads

    @property
    def last_event_id(self) -> Optional[str]:
        """The id of the last event received from a stream (sent as Last-Event-ID on the next connection)."""
        return self._last_event_id

    @property
    def epoch(self) -> Optional[str]:
        """The daemon run the last event id belongs to."""
        return self._epoch

    @property
    def ports(self) -> dict[str, dict]:
        """The current view: port name -> the data of its latest `port_state` (a copy)."""
        with self._lock:
            return {name: dict(data) for name, data in self._ports.items()}

    def url(self, transport: str) -> str:
        """The URL a transport connects to, with the filters in its query."""
        query = {}
        if self.event_types:
            query["events"] = ",".join(self.event_types)
        if self.port_patterns:
            query["ports"] = ",".join(self.port_patterns)
        if transport == "poll":
            path, query = "/v1/ports", {}
        else:
            path = f"/v1/{transport}/events"
        scheme = {"ws": "wss" if self.tls else "ws"}.get(transport, "https" if self.tls else "http")
        text = urllib.parse.urlencode(query, safe=",*")
        return f"{scheme}://{self._netloc()}{self.prefix}{path}" + (f"?{text}" if text else "")

    # ---- running

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def run(self, callback: Callable[[Event], Any]) -> None:
        """Hands every event to `callback` until `stop()` (or a `FatalError`)."""
        for event in self.events():
            callback(event)

    def stop(self) -> None:
        """Ends the iteration soon, from any thread: closes the open connection and interrupts a backoff."""
        self._stopping.set()
        session = self._session
        if session is not None:
            session.close()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def events(self) -> Iterator[Event]:
        """Events, for ever (until `stop()`): the reconnect loop."""
        failures = 0
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            progressed = False
            for transport in self.transports:
                if self._stopping.is_set():
                    return
                url = self.url(transport)
                try:
                    session = self._open(transport)
                except _Refused as refused:
                    self._status(Status("refused", attempt, transport, url, str(refused)))
                    continue
                resuming = f"resuming after {self._last_event_id}" if self._last_event_id and transport != "poll" \
                    else ""
                self._status(Status("connected", attempt, transport, url, resuming))
                self.transport = transport
                self._session = session
                if self._stopping.is_set():  # stop() came while this session was opening
                    session.close()
                try:
                    for event in session.events:
                        progressed = True
                        yield event
                        if self._stopping.is_set():
                            break
                finally:
                    self._session = None
                    self.transport = None
                    session.close()
                if self._stopping.is_set():
                    return
                self._status(Status("ended", attempt, transport, url, session.end_reason))
                break
            failures = 1 if progressed else failures + 1
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1))
            if self.jitter:
                delay *= 1 - self.jitter * random.random()
            self._status(Status("backoff", attempt, delay=delay))
            if self._stopping.wait(delay):
                return

    # ---- internals

    def _status(self, status: Status) -> None:
        self.history.append(status)
        log.info("%s", status)
        if self.on_status is not None:
            self.on_status(status)

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    def _headers(self, resume: bool) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if resume and self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        return headers

    def _socket(self) -> socket.socket:
        try:
            sock = self.socket_factory(self.host, self.port, self.connect_timeout)
        except OSError as error:
            raise _Refused(_describe(error)) from error
        return sock

    def _open(self, transport: str) -> _Session:
        if transport == "ws":
            return self._open_ws()
        if transport == "sse":
            return self._open_sse()
        return self._open_poll()

    def _accept(self, event: Event) -> None:
        """Updates the last id, the epoch and the port view with one streamed event."""
        if event.id:
            self._last_event_id = event.id
            if "-" in event.id:
                self._epoch = event.id.rsplit("-", 1)[0]
        with self._lock:
            if event.type == "reset":
                self._ports.clear()
                if event.data.get("epoch"):
                    self._epoch = event.data["epoch"]
            elif event.type == "port_state" and event.port:
                self._ports[event.port] = dict(event.data)
            elif event.type == "port_deleted" and event.port:
                self._ports.pop(event.port, None)

    # WebSocket

    def _open_ws(self) -> _Session:
        sock = self._socket()
        try:
            # Held open for the session: entered as a context at once (websockets deprecates a connection used
            # outside one), and left when the session's events end.
            held = contextlib.ExitStack()
            connection = held.enter_context(ws_connect(
                self.url("ws"), sock=sock, ssl=self.ssl_context if self.tls else None,
                server_hostname=self.host if self.tls else None, additional_headers=self._headers(True),
                open_timeout=self.connect_timeout, close_timeout=2, max_size=1 << 20, compression=None))
        except InvalidStatus as error:
            # Any answer but 101 means "no WebSocket here": SSE is tried next, and its answer (which carries the
            # daemon's message) decides whether the refusal is final. The WebSocket upgrade cannot be trusted to
            # carry the reason: a refused upgrade may be answered with a bare 400.
            sock.close()
            status = error.response.status_code
            message = _error_message(error.response.body or b"")
            raise _Refused(f"HTTP {status}" + (f" {message}" if message else "")) from error
        except (InvalidHandshake, OSError, TimeoutError, EOFError) as error:
            sock.close()
            raise _Refused(f"handshake failed: {_describe(error)}") from error
        # The daemon refuses an upgraded WebSocket with a close code (1008: bad token or filter, 1013: too many
        # clients) before any event; otherwise its first message (the snapshot, or `sync`) comes at once.
        first: list = []
        try:
            first.append(connection.recv(timeout=self.connect_timeout))
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            received = closed.rcvd
            held.close()
            sock.close()
            reason = f"closed {received.code} {received.reason}".rstrip() if received else "closed"
            raise _Refused(reason) from closed

        def close() -> None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

        session = _Session(iter(()), close)

        def events() -> Iterator[Event]:
            with held:  # closes the connection when the session ends
                while not self._stopping.is_set():
                    try:
                        message = first.pop() if first else connection.recv(timeout=1.0)
                    except TimeoutError:
                        continue  # liveness is websockets' keepalive pings; this only lets stop() be seen
                    except ConnectionClosed as closed:
                        received = closed.rcvd
                        cause = closed.__cause__ or getattr(connection, "connection_exc", None)
                        session.end_reason = (
                            f"closed by the daemon ({received.code} {received.reason})".rstrip() if received
                            else "connection lost" + (f" ({_describe(cause)})" if cause else ""))
                        return
                    try:
                        event = Event.from_wire(json.loads(message), "ws")
                    except (ValueError, AttributeError) as error:
                        session.end_reason = f"not an event: {error}"
                        return
                    self._accept(event)
                    yield event
                    if event.type == "shutdown":
                        session.end_reason = f"shutdown ({event.data.get('reason', '')})".replace(" ()", "")
                        return

        session.events = events()
        return session

    # Server-Sent Events

    def _request(self, path_url: str, resume: bool, accept: str) -> tuple[http.client.HTTPConnection,
                                                                          http.client.HTTPResponse]:
        sock = self._socket()
        if self.tls:
            sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        sock.settimeout(self.read_timeout)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.read_timeout)
        conn.sock = sock
        split = urllib.parse.urlsplit(path_url)
        target = split.path + (f"?{split.query}" if split.query else "")
        headers = {"Accept": accept, "Host": self._netloc(), **self._headers(resume)}
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise _Refused(_describe(error)) from error
        if response.status != 200:
            body = b""
            try:
                body = response.read(4096)
            except (OSError, http.client.HTTPException):
                pass
            conn.close()
            message = _error_message(body)
            if response.status in FATAL_STATUSES:
                raise FatalError(response.status, message)
            raise _Refused(f"HTTP {response.status}" + (f" {message}" if message else ""))
        return conn, response

    def _open_sse(self) -> _Session:
        conn, response = self._request(self.url("sse"), True, "text/event-stream")
        kind = response.getheader("Content-Type", "")
        if not kind.startswith("text/event-stream"):
            conn.close()
            raise _Refused(f"not an event stream (Content-Type {kind!r})")
        sock = conn.sock

        def close() -> None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
            conn.close()

        session = _Session(iter(()), close)
        parser = SseParser()

        def events() -> Iterator[Event]:
            while not self._stopping.is_set():
                try:
                    raw = response.readline()
                except (OSError, http.client.HTTPException, ValueError) as error:
                    session.end_reason = f"connection lost: {_describe(error)}"
                    return
                if not raw:
                    session.end_reason = "closed by the daemon"
                    return
                message = parser.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.server_retry_ms = parser.retry_ms
                if message is None:
                    continue
                try:
                    event = Event.from_wire(json.loads(message.data), "sse", message.last_id)
                except (ValueError, AttributeError):
                    event = Event(type=message.event, data={"text": message.data}, transport="sse",
                                  id=message.last_id)
                self._accept(event)
                yield event
                if event.type == "shutdown":
                    session.end_reason = f"shutdown ({event.data.get('reason', '')})".replace(" ()", "")
                    return

        session.events = events()
        return session

    # Polling

    def _poll(self) -> list[dict]:
        conn, response = self._request(self.url("poll"), False, "application/json")
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise _Refused(_describe(error)) from error
        finally:
            conn.close()
        try:
            ports = json.loads(body)
        except ValueError as error:
            raise _Refused(f"not JSON: {error}") from error
        if not isinstance(ports, list):
            raise _Refused("not a list of ports")
        return ports

    def _wants_port(self, name: str) -> bool:
        if not self.port_patterns:
            return True
        return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in self.port_patterns)

    def _wants_type(self, kind: str) -> bool:
        return not self.event_types or kind in self.event_types

    def _diff(self, polled: list[dict]) -> list[Event]:
        """Synthetic events turning the port view into what `/v1/ports` says now (and the view updated)."""
        now = int(time.time() * 1000)
        current: dict[str, dict] = {}
        stamps: dict[str, Optional[int]] = {}
        for port in polled:
            name = port.get("name")
            if not isinstance(name, str) or port.get("admin") is None or not self._wants_port(name):
                continue  # configured only: the kernel has no such link (yet)
            data = {"admin": port.get("admin"), "oper": port.get("oper"), "mtu": port.get("mtu"),
                    "ifindex": port.get("ifindex"), "trace_id": port.get("trace_id")}
            if port.get("carrier_changes") is not None:
                data["carrier_changes"] = port["carrier_changes"]
            current[name] = data
            stamps[name] = port.get("updated_ms")
        out = []
        with self._lock:
            for name in sorted(set(self._ports) - set(current)):
                del self._ports[name]
                if self._wants_type("port_deleted"):
                    out.append(Event("port_deleted", {"ifindex": None}, "poll", port=name, time_ms=now,
                                     priority="high", synthetic=True))
            for name in sorted(current):
                data = current[name]
                old = self._ports.get(name)
                if old is not None and all(old.get(k) == data.get(k) for k in STATE_FIELDS):
                    continue
                self._ports[name] = data
                if self._wants_type("port_state"):
                    out.append(Event("port_state", dict(data), "poll", port=name, time_ms=stamps[name] or now,
                                     priority="high", synthetic=True))
        return out

    def _open_poll(self) -> _Session:
        first = self._poll()
        started = time.monotonic()
        session = _Session(iter(()), lambda: None)

        def events() -> Iterator[Event]:
            changes = self._diff(first)
            yield from changes
            with self._lock:
                count = len(self._ports)
            yield Event("sync", {"ports": count}, "poll", time_ms=int(time.time() * 1000), priority="high",
                        synthetic=True)
            while True:
                if time.monotonic() - started >= self.stream_retry_interval:
                    session.end_reason = "polling for a while; trying the streams again"
                    return
                if self._stopping.wait(self.poll_interval):
                    return
                try:
                    polled = self._poll()
                except _Refused as refused:
                    session.end_reason = f"poll failed: {refused}"
                    return
                yield from self._diff(polled)

        session.events = events()
        return session


def _items(values: Optional[Iterable[str]]) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = values.split(",")
    return tuple(v.strip() for v in values if v and v.strip())


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _error_message(body: bytes) -> str:
    """The daemon's error message (`{"error": {"message": ...}}`), or the start of the body."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip()
