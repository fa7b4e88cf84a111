"""The payment providers' small interface, for the pay pages (`edge.web.pay_desk`).

A provider takes money the site cannot hold itself: it creates a payment (amount, currency, a reference,
an expiry) and says what to show the driver (a QR image or payload, or an address to send them to); later it
tells the edge what happened by a webhook, which `verify` turns into a typed `Event` or refuses. Where the
provider can, it also cancels an unpaid payment.

The site's own wallet is not one of these: it is the ledger itself (`edge.billing.pay`, `edge.billing.ledger`:
hold, capture at stop, release), and needs no network. `paymongo` (QR Ph through PayMongo) is the first
provider: `edge.billing.paymongo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class ProviderError(Exception):
    """The provider could not be asked (`unreachable`: the network or the provider is down) or refused."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class WebhookRefused(ValueError):
    """A webhook that is not the provider's (bad or missing signature), too old or too new, or unreadable."""


@dataclass(frozen=True)
class Shown:
    """What the driver is shown to pay: the provider's reference for the payment, and a QR image (a data:
    URL), a QR payload, or an address to go to."""

    ref: str
    qr_image: str | None = None
    qr_payload: str | None = None
    redirect_url: str | None = None


@dataclass(frozen=True)
class Event:
    """A verified webhook. `kind`: "paid", "failed", "expired" or "other" (recorded, changes nothing)."""

    id: str
    kind: str
    type: str  # the provider's own name for it
    ref: str | None  # the payment's reference as `Shown.ref` gave it
    payment_id: str | None
    amount_minor: int | None
    currency: str | None
    live: bool


class Provider(Protocol):
    name: str

    async def create(self, *, amount_minor: int, currency: str, reference: str, description: str,
                     expires_s: float) -> Shown: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Event: ...

    async def cancel(self, ref: str) -> None: ...

    async def reachable(self) -> bool: ...

