"""QR Ph through PayMongo's REST API (https://developers.paymongo.com), as its documentation describes it:

- **Create:** a Payment Intent (`POST /v1/payment_intents`, amount in centavos, `payment_method_allowed`
  ["qrph"]), a Payment Method of type `qrph` (`POST /v1/payment_methods`), and the attach
  (`POST /v1/payment_intents/<id>/attach`), whose answer has `next_action.code.image_url`: the QR Ph code as a
  base64 PNG data URL. Every request is authenticated with HTTP Basic, the secret key as the user. An error is
  `{"errors": [{"code", "detail", ...}]}` with a 4xx status.
- **Webhooks:** `payment.paid`, `payment.failed`, `qrph.expired`, each an Event resource
  (`data.id`, `data.attributes.type`, `.livemode`, `.data`: the resource). The `Paymongo-Signature` header is
  `t=<unix time>,te=<test signature>,li=<live signature>`: HMAC-SHA256 of `t + "." + the raw body` with the
  webhook's secret key, hex; `te` is compared in test mode and `li` in live mode. Events older (or newer)
  than `tolerance` seconds are refused, so that a captured webhook cannot be replayed later.
- **Cancel:** an unpaid intent (`POST /v1/payment_intents/<id>/cancel`).

QR Ph is a push payment: it cannot be held or refunded; the edge credits what was paid to a wallet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

import httpx

from edge.billing.payments import Event, ProviderError, Shown, WebhookRefused

KINDS = {"payment.paid": "paid", "payment.failed": "failed", "qrph.expired": "expired"}


def signature_header(secret: str, body: bytes, t: int, live: bool = False) -> str:
    """The `Paymongo-Signature` PayMongo would send for `body` at time `t` (for tests and the bench)."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},te={'' if live else mac},li={mac if live else ''}"


class PayMongo:
    name = "paymongo"

    def __init__(self, secret_key: str, webhook_secret: str, *, api_base: str = "https://api.paymongo.com",
                 timeout: float = 10.0, tolerance: int = 300):
        self.secret_key, self.webhook_secret = secret_key, webhook_secret
        self.api_base, self.timeout, self.tolerance = api_base.rstrip("/"), timeout, tolerance

    # -- the REST API ------------------------------------------------------------------------------------
    async def _post(self, client: httpx.AsyncClient, path: str, attributes: dict) -> dict:
        try:
            answer = await client.post(f"{self.api_base}{path}", json={"data": {"attributes": attributes}},
                                       auth=(self.secret_key, ""), timeout=self.timeout)
        except httpx.HTTPError as e:
            raise ProviderError(f"PayMongo cannot be reached: {e.__class__.__name__}", unreachable=True) from None
        if answer.status_code >= 500:
            raise ProviderError(f"PayMongo answered {answer.status_code}", unreachable=True)
        try:
            body = answer.json()
        except ValueError:
            raise ProviderError(f"PayMongo answered {answer.status_code} without JSON", unreachable=True) from None
        if answer.status_code >= 400:
            errors = body.get("errors") or [{}]
            detail = "; ".join(str(e.get("detail") or e.get("code") or "?") for e in errors)
            raise ProviderError(f"PayMongo refused ({answer.status_code}): {detail}")
        return body["data"]

    async def create(self, *, amount_minor: int, currency: str, reference: str, description: str,
                     expires_s: float) -> Shown:
        """A dynamic QR Ph code for `amount_minor` centavos (PayMongo's codes end after 30 minutes; the edge's
        own pay session ends after `expires_s`, and cancels the intent then)."""
        async with httpx.AsyncClient() as client:
            intent = await self._post(client, "/v1/payment_intents", {
                "amount": amount_minor, "currency": currency, "payment_method_allowed": ["qrph"],
                "description": description, "statement_descriptor": "EV charging",
                "metadata": {"pay_code": reference}})
            method = await self._post(client, "/v1/payment_methods", {"type": "qrph",
                                                                      "metadata": {"pay_code": reference}})
            attached = await self._post(client, f"/v1/payment_intents/{intent['id']}/attach",
                                        {"payment_method": method["id"]})
        action = (attached.get("attributes") or {}).get("next_action") or {}
        image = (action.get("code") or {}).get("image_url")
        if not image:
            raise ProviderError(f"PayMongo gave no QR code for {intent['id']} (next_action: {action.get('type')})")
        return Shown(ref=intent["id"], qr_image=image)

    async def cancel(self, ref: str) -> None:
        async with httpx.AsyncClient() as client:
            await self._post(client, f"/v1/payment_intents/{ref}/cancel", {})

    async def reachable(self) -> bool:
        """Whether PayMongo answers at all (any HTTP answer, even a 401 or 404, means it is there)."""
        try:
            async with httpx.AsyncClient() as client:
                await client.get(f"{self.api_base}/v1/payment_intents/pi_reachable", auth=(self.secret_key, ""),
                                 timeout=min(self.timeout, 5.0))
        except httpx.HTTPError:
            return False
        return True

    # -- webhooks ----------------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Event:
        header = next((v for k, v in headers.items() if k.lower() == "paymongo-signature"), None)
        if not header:
            raise WebhookRefused("no Paymongo-Signature header")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            t = int(parts.get("t", ""))
        except ValueError:
            raise WebhookRefused("the Paymongo-Signature header has no time") from None
        try:
            event = json.loads(body)
            data = event["data"]
            attributes = data["attributes"]
            live = bool(attributes.get("livemode"))
        except (ValueError, KeyError, TypeError):
            raise WebhookRefused("not a PayMongo event") from None
        want = hmac.new(self.webhook_secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        given = parts.get("li" if live else "te", "")
        if not given or not hmac.compare_digest(want, given):
            raise WebhookRefused(f"the {'live' if live else 'test'} signature does not match")
        now = time.time() if now is None else now
        if abs(now - t) > self.tolerance:
            raise WebhookRefused(f"signed {int(now - t)} s away from now (at most {self.tolerance} s)")
        resource = attributes.get("data") or {}
        res_attrs = resource.get("attributes") or {}
        rid = str(resource.get("id") or "")
        ref = res_attrs.get("payment_intent_id") or (rid if rid.startswith("pi_") else None)
        amount = res_attrs.get("amount")
        return Event(id=str(data.get("id")), kind=KINDS.get(attributes.get("type"), "other"),
                     type=str(attributes.get("type")), ref=ref, payment_id=rid if rid.startswith("pay_") else None,
                     amount_minor=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
                     currency=res_attrs.get("currency"), live=live)
