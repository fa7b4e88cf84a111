"""What operations need of the site's chargers, as a small protocol the OCPP shell provides (so that nothing
here imports it), and the one place that turns an intent into each OCPP version's message."""

from __future__ import annotations

from typing import Protocol


class Charger(Protocol):
    """A connected charger: its id, its OCPP version, and a CALL of the edge's own (its answer, or raises
    RuntimeError for a CALLERROR, TimeoutError, ConnectionError)."""

    charger_id: str
    version: str

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict: ...


class Chargers(Protocol):
    def connected(self, charger_id: str) -> Charger | None:
        """The charger if it is connected now."""
        ...


def remote_start(version: str, connector: int, id_tag: str, remote_id: int) -> tuple[str, dict]:
    """Start charging on `connector` for `id_tag`: 1.6 RemoteStartTransaction, 2.0.1 RequestStartTransaction
    (on EVSE `connector`, with `remote_id` as its remoteStartId)."""
    if version == "1.6":
        return "RemoteStartTransaction", {"connectorId": connector, "idTag": id_tag}
    return "RequestStartTransaction", {"idToken": {"idToken": id_tag, "type": "ISO14443"}, "evseId": connector,
                                       "remoteStartId": remote_id}


def remote_stop(version: str, tx_id: int | None, tx_key: str) -> tuple[str, dict]:
    """Stop a session: 1.6 RemoteStopTransaction by the charger's transaction id, 2.0.1
    RequestStopTransaction by its transaction key."""
    if version == "1.6":
        return "RemoteStopTransaction", {"transactionId": int(tx_id if tx_id is not None else tx_key)}
    return "RequestStopTransaction", {"transactionId": tx_key}
