"""Starting and stopping the server: in the foreground (`quantdesk serve`) or in a thread of the
app while the user chats (the Server page).

We bind the socket ourselves before uvicorn starts, so "the port is taken" is a one-line error
for the page or the terminal instead of uvicorn's exit. Any address other than this machine's
own (127.0.0.1, ::1, localhost) needs an API key: a server on the network without one would let
anyone on it use the models.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from quantdesk.core.errors import QuantdeskError, UsageError
from quantdesk.server.app import build_app
from quantdesk.server.registry import Catalogue, Registry
from quantdesk.server.requestlog import RequestLog
from quantdesk.server.service import ServerContext

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_LOADED = 2
DEFAULT_TTL_S = 900.0
DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class ServerError(QuantdeskError):
    """The server could not start; the message says why."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_api_key() -> str:
    """A key for "serve on my network": 32 random bytes, URL-safe."""
    return "qd-" + secrets.token_urlsafe(32)


@dataclass
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (tests)
    api_key: str = ""
    cors_origins: list[str] = field(default_factory=list)
    max_loaded: int = DEFAULT_MAX_LOADED
    ttl_s: float = DEFAULT_TTL_S  # 0: never unload for idleness
    max_queue: int = DEFAULT_MAX_QUEUE  # requests that may wait per model
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    models: list[str] = field(default_factory=list)  # only these (ids or .gguf paths); empty: the Library

    def check(self) -> None:
        """Raise UsageError for a configuration that must not run."""
        if not is_loopback(self.host) and not self.api_key:
            raise UsageError(
                f"serving on {self.host} makes the models reachable from other machines; "
                "give an API key (--api-key KEY) so only those who have it can use them"
            )
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not a port number (1-65535)")
        if self.max_loaded < 1:
            raise UsageError("--max-loaded must be 1 or more")
        if self.ttl_s < 0:
            raise UsageError("--ttl must be 0 (never unload) or more seconds")
        if self.max_queue < 0:
            raise UsageError("the queue length must be 0 or more")
        for origin in self.cors_origins:
            if origin != "*" and "://" not in origin:
                raise UsageError(f"CORS origin {origin!r} should look like https://example.com (or be *)")


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ServerError(f"cannot serve on {host}: {e.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ServerError(f"port {port} on {host} is already in use; pick another port") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ServerError(f"this system does not allow serving on port {port}; pick one above 1024") from None
        raise ServerError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


class Server:
    """One server: its registry (loaded models) and request log live as long as it does."""

    def __init__(self, config: ServerConfig, log_: RequestLog | None = None, preload: bool = False) -> None:
        """`preload`: load the --model models (as many as max_loaded) before accepting requests."""
        config.check()
        self.config = config
        self.log = log_ or RequestLog()
        self.registry = Registry(
            Catalogue(config.models),
            max_loaded=config.max_loaded,
            ttl_s=config.ttl_s,
            max_queue=config.max_queue,
        )
        first: list[str] = []
        if config.models:
            entries = self.registry.catalogue.entries(fresh=True)  # an unknown --model fails now, in words
            first = [e.id for e in entries][: config.max_loaded] if preload else []
        ctx = ServerContext(self.registry, self.log, config.max_body_bytes)
        self.app = build_app(ctx, config.api_key, config.cors_origins, preload=first)
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = config.port

    @property
    def address(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _make(self) -> tuple[uvicorn.Server, socket.socket]:
        sock = _bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,  # our own request log says more
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
        return uvicorn.Server(config), sock

    def start(self, timeout_s: float = 15.0) -> None:
        """Serve in a background thread; returns once it accepts connections."""
        server, sock = self._make()
        self._uvicorn = server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]),
            name="quantdesk-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive():
                raise ServerError("the server stopped while starting; the log has the details")
            if time.monotonic() > deadline:
                raise ServerError("the server did not start in time; the log has the details")
            time.sleep(0.01)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and unload every model."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None
        self._uvicorn = None

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl+C or SIGTERM, then stop cleanly (models unloaded, requests ended).

        uvicorn runs in a thread here too: in the main thread it takes over SIGINT and raises it
        again once stopped, which would end the command with a traceback instead of a goodbye."""
        stopping = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        self.start()
        if ready is not None:
            ready()
        try:
            while self.running and not stopping.wait(0.25):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()
