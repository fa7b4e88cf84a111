"""What operations need of the site's chargers, as a small protocol the OCPP shell provides (so that nothing
here imports it). The intents themselves, in each version's words: `edge.operations.intents`."""

from __future__ import annotations

from typing import Protocol


class Charger(Protocol):
    """A connected charger: its id, its OCPP version, and a CALL of the edge's own (its answer, or raises
    RuntimeError for a CALLERROR, TimeoutError, ConnectionError)."""

    charger_id: str
    version: str

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict: ...

    async def exchange(self, action: str, payload: dict, timeout: float = 30.0) -> tuple[dict | None, dict | None]:
        """(the answer, None) or (None, the CALLERROR's code, description, details)."""
        ...


class Chargers(Protocol):
    def connected(self, charger_id: str) -> Charger | None:
        """The charger if it is connected now."""
        ...


