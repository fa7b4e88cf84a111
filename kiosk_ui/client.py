"""The kiosk's only way to the edge: its HTTP API and its event stream, with the edge's local token. Three
threads put what happened on one queue for the shell: the site's state every `poll` seconds (or "down"
when the edge cannot be asked), the kiosk reader's taps from `/api/events`, and the answers to the screens'
requests. Each reconnects by itself, so the kiosk survives the edge restarting and the network dropping.

Queue items: ("site", state), ("down", why), ("tap", event), ("answer", request, result or None).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable

import httpx

from kiosk_ui.screens import Request

log = logging.getLogger(__name__)


class Client:
    def __init__(self, base_url: str, token: Callable[[], str | None], reader: str = "kiosk", poll: float = 2.0):
        """`token()`: the edge's local token, read again when it is missing (the edge writes it at start)."""
        self.base, self.token, self.reader, self.poll = base_url.rstrip("/"), token, reader, poll
        self.out: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _headers(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def start(self) -> Client:
        for target in (self._poll_state, self._stream_events):
            thread = threading.Thread(target=target, daemon=True, name=f"kiosk-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _poll_state(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = http.get(f"{self.base}/api/kiosk/state", headers=self._headers())
                    answer.raise_for_status()
                    self.out.put(("site", answer.json()))
                except (httpx.HTTPError, ValueError) as e:
                    self.out.put(("down", str(e) or e.__class__.__name__))
                self._stop.wait(max(0.0, self.poll - (time.monotonic() - began)))

    def _stream_events(self) -> None:
        """The taps of this kiosk's reader, from the Server-Sent Events stream (again after any break)."""
        while not self._stop.is_set():
            try:
                with httpx.Client(timeout=httpx.Timeout(5, read=30)) as http, \
                        http.stream("GET", f"{self.base}/api/events", headers=self._headers()) as answer:
                    answer.raise_for_status()
                    for line in answer.iter_lines():
                        if self._stop.is_set():
                            return
                        if not line.startswith("data: "):
                            continue
                        event = json.loads(line[6:])
                        if event.get("type") == "tap" and event.get("reader") == self.reader:
                            self.out.put(("tap", event))
            except (httpx.HTTPError, ValueError) as e:
                log.debug("kiosk: the event stream broke (%s); again in a moment", e)
            self._stop.wait(1.0)

    def send(self, request: Request) -> None:
        """Carry out a screen's request on a thread of its own; its answer comes on the queue."""
        threading.Thread(target=self._send, args=(request,), daemon=True).start()

    def _send(self, request: Request) -> None:
        result = None
        try:
            with httpx.Client(timeout=20) as http:
                if request.kind == "receipt":
                    for _ in range(10):  # the session's stop is being billed: a moment
                        answer = http.get(f"{self.base}/api/kiosk/receipt/{request.args['tx_id']}",
                                          headers=self._headers())
                        if answer.status_code != 404:
                            break
                        time.sleep(0.5)
                else:
                    answer = http.post(f"{self.base}/api/kiosk/{request.kind}", json=request.args,
                                       headers=self._headers())
                answer.raise_for_status()
                result = answer.json()
        except (httpx.HTTPError, ValueError) as e:
            log.warning("kiosk: %s failed: %s", request.kind, e)
        if result is not None and result.get("result") == "refused":
            log.info("kiosk: %s refused: %s", request.kind, result.get("message"))
        self.out.put(("answer", request, result))
