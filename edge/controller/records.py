"""What the local controller asks the store to write: one small record type per row writer.

A `Persist` action carries a list of these; the shell (`edge.ocpp.persist`) hands each to its writer in
`edge.store.ops`, or for `CloseSession` to billing's rule for a session that ended. The fields are the
writer's named parameters (`vars(op)`), so a record and its writer cannot drift apart unnoticed: a test
applies every kind to a real database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ChargerBoot:
    """A BootNotification's facts about the charger."""

    charger_id: str
    version: str
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    ts: str
    accepted: bool = True  # answered Accepted: the charger is the site's from now on


@dataclass
class ChargerConnected:
    charger_id: str
    version: str
    ts: str


@dataclass
class ChargerDisconnected:
    charger_id: str
    ts: str


@dataclass
class StatusSeen:
    """A connector's status (evse 0 stands for 'none' in 1.6)."""

    charger_id: str
    evse_id: int
    connector_id: int
    status: str | None
    error_code: str | None
    ts: str


@dataclass
class ReplaySet:
    """The latest Boot or Status of its kind (`key`: "boot" or "status:EVSE:CONNECTOR"), to go up on return."""

    charger_id: str
    key: str
    frame: str


@dataclass
class ReplayDone:
    """Upstream has that Boot or Status (only if `frame` is still the latest)."""

    charger_id: str
    key: str
    frame: str


@dataclass
class Enqueue:
    """A frame for upstream, at the end of the charger's durable queue."""

    charger_id: str
    seq: int
    msg_id: str
    action: str
    frame: str
    tx_id: int | None


@dataclass
class Dequeue:
    charger_id: str
    seq: int


@dataclass
class TxStart:
    """A session's start record (1.6 StartTransaction, or a 2.0.1 start the edge decides)."""

    id: int
    charger_id: str
    tx_key: str
    version: str
    evse_id: int | None
    connector_id: int | None
    id_tag: str | None
    meter_start: int | None
    started_at: str | None
    started_offline: int
    upstream_tx_id: int | None
    upstream_status: str | None


@dataclass
class TxMap:
    """Upstream's id and status for a 1.6 session the edge numbered."""

    id: int
    upstream_tx_id: int | None
    upstream_status: str | None


@dataclass
class TxUpstreamStatus:
    charger_id: str
    tx_key: str
    status: str


@dataclass
class TxStop:
    """A 1.6 StopTransaction."""

    charger_id: str
    tx_key: str
    meter_stop: int | None
    stopped_at: str | None
    reason: str


@dataclass
class TxEvent:
    """A 2.0.1 TransactionEvent (`id`: the edge's number for a transaction it sees first, else None)."""

    id: int | None
    version: str
    charger_id: str
    tx_key: str
    event: str | None
    evse_id: int | None
    connector_id: int | None
    id_tag: str | None
    ts: str | None
    energy_wh: int | None
    reason: str | None


@dataclass
class MeterRows:
    rows: list[dict]


@dataclass
class AuthCache:
    """Upstream's word on a card (`edge.controller.authorize.Authorizer.learn`'s row)."""

    row: dict


@dataclass
class CloseSession:
    """The session ended: settle its bill once and queue its record for the cloud (billing's rule)."""

    charger_id: str
    tx_key: str


@dataclass
class TransferStatus:
    """A charger's word on a firmware update or a log upload (`edge.store.ops.transfer_status`)."""

    charger_id: str
    kind: str  # firmware, log
    status: str
    request_id: int | None
    ts: str


@dataclass
class ReportRows:
    """One part of a 2.0.1 NotifyReport: the device model's rows (key, attribute, value, mutability, ...)."""

    charger_id: str
    rows: list[dict]
    ts: str
    request_id: int | None = None  # the GetBaseReport's requestId the part answers
    tbc: bool = False  # more parts follow


@dataclass
class EvNeeds:
    """A 2.0.1 NotifyEVChargingNeeds: what the EV on an EVSE can take and wants (ISO 15118)."""

    charger_id: str
    evse_id: int
    max_current_a: float | None
    energy_wh: int | None
    departure: str | None
    ts: str


StoreOp = (ChargerBoot | ChargerConnected | ChargerDisconnected | StatusSeen | ReplaySet | ReplayDone | Enqueue
           | Dequeue | TxStart | TxMap | TxUpstreamStatus | TxStop | TxEvent | MeterRows | AuthCache | CloseSession
           | TransferStatus | ReportRows | EvNeeds)
