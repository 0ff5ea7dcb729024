"""A client for portsyncd's event streams (`/v1/ws/events`, `/v1/sse/events`) with a fallback to polling
`/v1/ports`, exponential backoff between reconnects and resume by the last event id.

    from portsyncd_client import PortsyncClient

    client = PortsyncClient("http://127.0.0.1:9470", ports=["Ethernet0", "Ethernet4*"])
    for event in client:
        print(event.type, event.port, event.data)
"""

from .client import TRANSPORTS, Event, FatalError, PortsyncClient, SocketFactory, Status
from .sse import SseMessage, SseParser

__all__ = ["TRANSPORTS", "Event", "FatalError", "PortsyncClient", "SocketFactory", "SseMessage", "SseParser",
           "Status"]
__version__ = "0.1.0"
