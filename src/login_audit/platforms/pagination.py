"""Pagination as explicit objects, one per paging style, with loop and origin checks."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from login_audit import interrupts
from login_audit.errors import ProtocolError
from login_audit.http import HttpClient, same_origin
from login_audit.redaction import redact_url

log = logging.getLogger(__name__)

#: The longest ``nextLink`` followed: real ones are a few hundred characters, and a link
#: this long (or one holding CR/LF) is a broken or hostile answer, not a page to request.
MAX_LINK = 65536

#: Cloud One's page size; its maximum is not published, so a refused one steps down once.
CURSOR_LIMIT = 100
CURSOR_FALLBACK = 25


def expect_list(key: str, *, null_ends: tuple[str, ...] = ()) -> Any:
    """A body check for :meth:`HttpClient.request_json`: ``body[key]`` must be a list.

    With ``null_ends``, ``body[key] = null`` on a page that links to no other page (no key
    of ``null_ends`` set) is an empty last page, as the vendor's SDK reads it; a null list
    on a page that continues is still refused (it may hide records).
    """

    def check(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "a body that is not a JSON object"
        value = body.get(key)
        if value is None and key in body and null_ends:
            if not any(body.get(link) for link in null_ends):
                return None
            return f"a null {key!r} on a page that links to another page"
        if not isinstance(value, list):
            return f"no {key!r} list in the body"
        return None

    return check


NEXT_LINK_KEYS = ("nextLink", "@odata.nextLink")

T = TypeVar("T")
_END = object()


def read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """Yield what ``pages`` yields; from the second page on, the next page is requested on
    a thread of its own while the caller handles the current one.

    Pages linked one to the next can only be read one after another; with this, such a
    chain waits on the vendor alone, not also on the parsing and storing of every page.
    The first page comes as it would without it, so a caller that reads one page and stops
    (a probe) costs no request more; after that, a caller that stops early leaves one
    request in flight, whose page is dropped. At most one page waits for the caller while
    the next is read, so memory holds three pages at most (the caller's included). An error
    of ``pages`` reaches the caller where it would have without the thread, after the
    pages before it.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        interrupts.spare_this_thread()
        try:
            for page in pages:
                handoff.put((True, page))  # waits while the caller has not taken the last
                if stop.is_set():
                    return
            handoff.put((False, _END))
        except BaseException as exc:  # handed to the caller, raised there
            handoff.put((False, exc))
        finally:
            _close(pages)

    worker: threading.Thread | None = None
    try:
        first = next(pages, _END)
        if first is _END:
            return
        yield first  # type: ignore[misc]  # not _END
        worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
        worker.start()
        while True:
            is_page, value = handoff.get()
            if is_page:
                yield value
            elif value is _END:
                return
            else:
                raise value
    finally:
        if worker is None:
            _close(pages)
        else:
            stop.set()
            # Room for the one page the worker may still hand over, so it never waits.
            with contextlib.suppress(queue.Empty):
                handoff.get_nowait()


def _close(pages: Iterator[Any]) -> None:
    close = getattr(pages, "close", None)
    if close is not None:
        close()


@dataclass
class NextLinkPager:
    """Follows Vision One's ``nextLink`` (or ``@odata.nextLink``) chains.

    The link is requested exactly as given, with the same headers (``TMV1-Filter``
    included). A link seen twice, or one that leaves the tenant's origin (the token
    would follow it), is an error rather than an endless or leaking loop. The last page has
    no link (or a null one); an empty link is not documented and could as well be a lost
    one with more pages behind it, so it is an error too, never the end of the listing.
    """

    http: HttpClient
    url: str
    base_url: str
    items_key: str = "items"
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] | None = None
    permission: str = ""
    pages_read: int = field(default=0, init=False)

    def pages(self) -> Iterator[list[Any]]:
        """Yield the item list of each page in order."""
        for items, _ in self.pages_with_links():
            yield items

    def pages_with_links(self) -> Iterator[tuple[list[Any], str | None]]:
        """Yield ``(items, next link)`` for each page; the link is None on the last page."""
        url: str | None = self.url
        params = self.params
        seen: set[str] = set()
        while url is not None:
            body = self.http.get_json(
                url,
                params=params,
                headers=self.headers,
                permission=self.permission,
                expect=expect_list(self.items_key, null_ends=NEXT_LINK_KEYS),
            )
            self.pages_read += 1
            given = [body[key] for key in NEXT_LINK_KEYS if body.get(key) is not None]
            link = next((value for value in given if value != ""), None)
            if link is None and given:
                raise ProtocolError(
                    f"page {self.pages_read} has an empty nextLink, which may end the listing "
                    "or hide more pages (the API leaves nextLink out on its last page); not "
                    "taken as the end"
                )
            if link is None:
                yield body[self.items_key] or [], None
                return
            if not isinstance(link, str):
                raise ProtocolError(f"page {self.pages_read} has a nextLink that is not a string")
            if len(link) > MAX_LINK or any(ch < " " or ch == "\x7f" for ch in link):
                raise ProtocolError(
                    f"page {self.pages_read} has a nextLink of {len(link)} characters that is "
                    f"longer than {MAX_LINK} or holds control characters; refusing to follow it"
                )
            if not same_origin(link, self.base_url):
                raise ProtocolError(
                    f"page {self.pages_read} links to another origin "
                    f"({self.http.scrub(redact_url(link))}); refusing to send the token there"
                )
            if link in seen:
                raise ProtocolError(
                    f"page {self.pages_read} repeats an earlier nextLink; the listing would loop"
                )
            seen.add(link)
            yield body[self.items_key], link
            url, params = link, None


@dataclass
class CursorPager:
    """Cloud One's ``limit``/``cursor`` paging; ``next`` is absent (or null) on the last page.

    An empty ``next`` is not documented and could mean the end or a cursor lost with more
    pages behind it: the listing stops as incomplete rather than guess it was whole.
    """

    http: HttpClient
    url: str
    list_key: str
    permission: str = ""
    limit: int = CURSOR_LIMIT
    pages_read: int = field(default=0, init=False)

    def pages(self, cursor: str | None = None) -> Iterator[tuple[list[Any], str | None]]:
        """Yield ``(items, next cursor)`` per page, starting at ``cursor``."""
        # The cursor resumed from counts as seen: a page that hands it back would loop.
        seen: set[str] = {cursor} if cursor else set()
        while True:
            params: dict[str, str | int] = {"limit": self.limit}
            if cursor:
                params["cursor"] = cursor
            try:
                body = self.http.get_json(
                    self.url,
                    params=params,
                    permission=self.permission,
                    expect=expect_list(self.list_key),
                )
            except ProtocolError as exc:
                # The maximum limit is not published: step down once if it is refused.
                if exc.status == 400 and self.limit > CURSOR_FALLBACK and self.pages_read == 0:
                    log.info("limit %d refused; retrying with %d", self.limit, CURSOR_FALLBACK)
                    self.limit = CURSOR_FALLBACK
                    continue
                raise
            self.pages_read += 1
            following = body.get("next")
            if following is not None and not isinstance(following, str):
                raise ProtocolError(f"page {self.pages_read} has a 'next' that is not a string")
            if following == "":
                raise ProtocolError(
                    f"page {self.pages_read} has an empty 'next' cursor, which may end the "
                    "listing or hide more pages (the API leaves 'next' out on its last page); "
                    "not taken as the end"
                )
            if following is not None and following in seen:
                raise ProtocolError(
                    f"page {self.pages_read} repeats an earlier cursor; the listing would loop"
                )
            if following is not None:
                seen.add(following)
            yield body[self.list_key], following
            if following is None:
                return
            cursor = following
