"""HTTP plumbing shared by the fetchers: a session, a retrying streamed download, directory indexes.

Archives serve their files over plain HTTP(S) with an Apache/nginx-style HTML directory listing (the Gaia
CDN, the OGLE FTP-over-HTTP mirror). Every fetcher needs the same three things, written once here:

* :func:`http_session` — a :class:`requests.Session` with a User-Agent naming latentsky;
* :func:`download` / :func:`get_bytes` — stream a URL into a file or memory, retrying transient failures
  (:data:`RETRY_STATUSES`, connection errors, truncated bodies, MD5 mismatches) with exponential backoff
  and failing at once on anything else;
* :func:`index_links` — the absolute URLs an HTML directory index links to.

Every failure raises :class:`FetchError` with the URL first in the message.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from html.parser import HTMLParser
from typing import IO, Any
from urllib.parse import urljoin

# requests, not urllib: it is a hard dependency of astroquery (so always installed with latentsky) and
# gives connection pooling, timeouts and streaming without hand-written plumbing.
import requests
import urllib3
from tqdm.auto import tqdm

from latentsky import __version__

log = logging.getLogger(__name__)

#: HTTP statuses worth retrying: rate limiting and transient server-side failures (RFC 9110, Sec. 15.6).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Bytes read from the socket (and written to the sink) at a time.
CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """Fetching from an archive failed; the message names the URL and the reason.

    ``status`` is the HTTP status when the server answered with a definitive failure (e.g. 404), so a caller
    can tell "this file does not exist" from other failures; ``None`` otherwise.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def http_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` itself, or a new :class:`requests.Session` whose User-Agent names latentsky."""
    if session is not None:
        return session
    s = requests.Session()
    s.headers["User-Agent"] = f"latentsky/{__version__} (+requests/{requests.__version__})"
    return s


def download(
    session: requests.Session,
    url: str,
    sink: IO[bytes],
    *,
    timeout: float,
    retries: int,
    backoff_s: float,
    progress: bool = False,
    expected_md5: str | None = None,
    decode: bool = False,
) -> int:
    """Stream ``url`` into ``sink`` (truncated and rewritten on each retry); returns the byte count.

    Parameters
    ----------
    session
        The HTTP session (:func:`http_session`).
    url
        What to download.
    sink
        A seekable, truncatable binary file (or :class:`io.BytesIO`).
    timeout
        Seconds to wait for the connection and for each read.
    retries
        How many times a transient failure is retried (so at most ``retries + 1`` attempts).
    backoff_s
        Delay before the first retry in s; it doubles with each further retry.
    progress
        Show a tqdm bar of the bytes received.
    expected_md5
        Hex MD5 the bytes must have (a mismatch counts as transient: the download is repeated).
    decode
        Undo the HTTP Content-Encoding (for HTML and text, which servers may compress on the fly). Without
        it the bytes are stored as sent, which is what a ``.gz`` file must be: a server that labels .gz
        files ``Content-Encoding: gzip`` must not get them silently decompressed.

    Returns
    -------
    int
        Number of bytes written to ``sink``.

    Raises
    ------
    FetchError
        At once for an HTTP status other than 200 and not in :data:`RETRY_STATUSES` (e.g. 404); after the
        last attempt for transient failures (connection errors, timeouts, a body shorter than its
        Content-Length, statuses in :data:`RETRY_STATUSES`, an MD5 mismatch). The message starts with
        the URL.
    """
    last: str = ""
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)", url, last, delay, attempt + 1, retries + 1
            )
            time.sleep(delay)
        sink.seek(0)
        sink.truncate()
        try:
            with session.get(url, stream=True, timeout=timeout) as response:
                if response.status_code in RETRY_STATUSES:
                    last = f"HTTP {response.status_code} {response.reason}"
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        f"{url}: HTTP {response.status_code} {response.reason}", status=response.status_code
                    )
                expected = response.headers.get("Content-Length")
                total = int(expected) if expected and expected.isdigit() else None
                digest = hashlib.md5(usedforsecurity=False)
                n = 0
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=url.rsplit("/", 1)[-1] or url,
                    disable=not progress,
                    leave=False,
                ) as bar:
                    chunks = (
                        response.iter_content(CHUNK_BYTES)
                        if decode
                        else response.raw.stream(CHUNK_BYTES, decode_content=False)
                    )
                    for chunk in chunks:
                        sink.write(chunk)
                        digest.update(chunk)
                        n += len(chunk)
                        bar.update(len(chunk))
            # Content-Length counts the bytes on the wire, i.e. before decoding.
            if total is not None and not decode and n != total:
                last = f"received {n} of {total} bytes"
                continue
            if expected_md5 is not None and digest.hexdigest() != expected_md5.lower():
                last = f"MD5 {digest.hexdigest()} does not match the archive's {expected_md5}"
                continue
            sink.flush()
            return n
        except FetchError:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
    raise FetchError(f"{url}: download failed after {retries + 1} attempt(s): {last}")


def get_bytes(
    session: requests.Session, url: str, *, timeout: float, retries: int, backoff_s: float
) -> bytes:
    """The body of ``url`` in memory, Content-Encoding undone (:func:`download` with ``decode=True``)."""
    buffer = io.BytesIO()
    download(session, url, buffer, timeout=timeout, retries=retries, backoff_s=backoff_s, decode=True)
    return buffer.getvalue()


class LinkCollector(HTMLParser):
    """The ``href`` of every ``<a>`` in an HTML directory index (stdlib html.parser does the parsing)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() == "a":
            self.links += [value for key, value in attrs if key.lower() == "href" and value]


def index_links(session: requests.Session, base_url: str, **kw: Any) -> list[str]:
    """Absolute URLs of every link on the HTML page ``base_url`` (a directory index), in page order.

    ``kw`` are :func:`get_bytes`'s ``timeout``, ``retries`` and ``backoff_s``. Links are resolved against
    ``base_url`` (so a directory URL must end in ``/``); sorting links (``?C=N;O=D``) and ``../`` are
    returned too: callers pick the names they understand.
    """
    page = get_bytes(session, base_url, **kw).decode("utf-8", errors="replace")
    parser = LinkCollector()
    parser.feed(page)
    parser.close()
    return [urljoin(base_url, href) for href in parser.links]


__all__ = [
    "CHUNK_BYTES",
    "RETRY_STATUSES",
    "FetchError",
    "LinkCollector",
    "download",
    "get_bytes",
    "http_session",
    "index_links",
]
