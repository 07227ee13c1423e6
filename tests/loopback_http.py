"""A small HTTP server on 127.0.0.1 for testing fetchers offline, and a guard against reaching anything else.

Usage::

    with LoopbackServer() as server:
        server.route("GET", "/index.html", Response(body=b"<a href='x.csv.gz'>x</a>"))
        server.serve_directory("/files/", tmp_path)
        fetch(server.url + "/index.html")
        assert server.count("GET", "/files/x.csv.gz") == 1

Routes map (method, path) to a fixed :class:`Response` or to a function of the :class:`RecordedRequest`;
a path is an exact string or a compiled regular expression (full match, e.g. job ids). Every request is
recorded (method, path, query, headers, body), so tests can check what a client sent and how often.
The server binds a random free port and runs in a daemon thread (``ThreadingHTTPServer``, one thread per
connection); leaving the ``with`` block shuts it down.

:func:`block_external_network` makes any connection or DNS lookup for a host other than the loopback
interface fail with :class:`ExternalNetworkBlocked` (an ``OSError``, as a real network failure would be),
so a test that would touch the internet fails instead.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        """The body as an ``application/x-www-form-urlencoded`` form (last value of each key)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}


@dataclass
class Response:
    """What a route answers. ``content_length`` overrides the header (to simulate a cut-off body)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None


Handler = Callable[[RecordedRequest], Response]
PathPattern = str | re.Pattern[str]


class LoopbackServer:
    """Threaded HTTP server on 127.0.0.1 with a random port; a context manager."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, PathPattern, Handler]] = []
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- routes
    def route(self, method: str, path: PathPattern, answer: Response | Handler) -> None:
        """Answer ``method`` requests for ``path`` (exact string or regex) with ``answer``."""
        handler = answer if callable(answer) else (lambda _req, r=answer: r)
        with self._lock:
            # Later routes win, so a test can override one installed by a helper.
            self._routes.insert(0, (method.upper(), path, handler))

    def serve_bytes(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """Serve fixed bytes at ``path`` (GET)."""
        self.route("GET", path, Response(body=body, headers={"Content-Type": content_type}))

    def serve_directory(self, prefix: str, directory: str | Path) -> None:
        """Serve the files of ``directory`` under the URL path ``prefix`` (GET; no listing)."""
        root = Path(directory).resolve()
        pattern = re.compile(re.escape(prefix.rstrip("/")) + r"/(?P<name>[^?]+)")

        def handler(request: RecordedRequest) -> Response:
            m = pattern.fullmatch(request.path)
            target = (root / unquote(m.group("name"))).resolve() if m else root
            if root not in target.parents or not target.is_file():
                return Response(status=404, body=b"not found")
            return Response(body=target.read_bytes(), headers={"Content-Type": "application/octet-stream"})

        self.route("GET", pattern, handler)

    # --------------------------------------------------------------------------------- inspection
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("server not started; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests_for(self, method: str, path: PathPattern) -> list[RecordedRequest]:
        """Recorded requests with this method and path (exact string or regex)."""
        with self._lock:
            recorded = list(self.requests)
        return [r for r in recorded if r.method == method.upper() and _matches(path, r.path)]

    def count(self, method: str, path: PathPattern) -> int:
        """How many such requests were received."""
        return len(self.requests_for(method, path))

    # ------------------------------------------------------------------------------------ serving
    def _dispatch(self, request: RecordedRequest) -> Response:
        with self._lock:
            self.requests.append(request)
            routes = list(self._routes)
        for method, path, handler in routes:
            if method == request.method and _matches(path, request.path):
                return handler(request)
        return Response(status=404, body=f"no route for {request.method} {request.path}".encode())

    def __enter__(self) -> LoopbackServer:
        server = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                )
                response = server._dispatch(request)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                declared = (
                    response.content_length if response.content_length is not None else len(response.body)
                )
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass  # keep test output clean; requests are recorded instead

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def _matches(pattern: PathPattern, path: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.fullmatch(path) is not None
    return pattern == path


# ------------------------------------------------------------------------------ network guard
class ExternalNetworkBlocked(OSError):
    """A test tried to reach a host other than the loopback interface."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths (bytes/str paths handled below) and other families: not internet
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def block_external_network() -> Iterator[None]:
    """Within the block, connecting to or resolving any non-loopback host raises ExternalNetworkBlocked."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if not _is_loopback(host):
                raise ExternalNetworkBlocked(f"test tried to connect to {address!r}; tests must stay offline")

    def connect(sock: socket.socket, address: object) -> None:
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback(name):
            raise ExternalNetworkBlocked(f"test tried to resolve {name!r}; tests must stay offline")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo  # type: ignore[assignment]


def apache_index(path: str, names: list[str]) -> bytes:
    """An Apache ``mod_autoindex`` page: sort links, the parent directory, then the entries."""
    rows = "\n".join(
        f'<tr><td valign="top"></td><td><a href="{n}">{n}</a></td><td align="right">2009-06-01 12:00</td>'
        f'<td align="right">12K</td></tr>'
        for n in names
    )
    return (
        f'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html><head><title>Index of {path}'
        f"</title></head><body><h1>Index of {path}</h1><table>"
        f'<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>'
        f'<tr><td></td><td><a href="{path.rsplit("/", 2)[0]}/">Parent Directory</a></td></tr>\n{rows}\n'
        "</table></body></html>"
    ).encode()
