"""The pay pages' worker (in the web process): pays from a wallet or through the payment provider (QR Ph),
takes the provider's webhooks, tells the charger to start once the hold is committed, and ends pay sessions
whose time is up. The rules and the money are `edge.billing.pay`'s; this is
the I/O around them: the database writes (each awaited: committed and fsynced before the next step), the
start command (through `edge.operations.calls`, recorded as an operation by "pay"), and a one-second sweep.

After a crash or a kill -9 nothing is lost: a pay session whose hold is committed either starts (the
charger's start finds it by its id tag, whenever it comes within the time) or is released by the sweep of
the next web process when its time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from edge.billing import pay
from edge.billing import sessions as billing
from edge.billing.payments import ProviderError
from edge.billing.providers import provider_from_config
from edge.config import pay_amounts
from edge.money import MoneyError, to_minor
from edge.operations import calls
from edge.operations.intents import remote_start
from edge.security import check_secret
from edge.web.pay_display import Displays

log = logging.getLogger(__name__)

START_ANSWER_TIMEOUT = 15.0  # seconds for the charger to answer the start command itself
PROBE_EVERY = 30.0  # seconds between asking whether a provider that could not be reached is back


class PayDesk:
    def __init__(self, edge: Any):
        self.edge = edge
        self._tasks: set[asyncio.Task] = set()
        self._remote_ids = int(time.time()) % 1_000_000
        self.displays = Displays(edge)
        self.provider = provider_from_config(edge.cfg.pay)
        self.provider_up = True  # false after the provider could not be reached, until a probe reaches it
        self._probed = 0.0

    @property
    def qrph_offered(self) -> bool:
        return self.provider is not None and self.provider_up

    def amounts(self) -> tuple[list[int], int, int]:
        return pay_amounts(self.edge.cfg.pay, billing.SETTINGS.exponent)

    @property
    def start_timeout(self) -> float:
        return self.edge.cfg.pay.start_timeout

    @staticmethod
    def money() -> pay.Money:
        s = billing.SETTINGS
        return pay.Money(s.currency, s.min_start_balance, s.max_hold)

    def connector_ok(self, charger_id: str, connector: int) -> str | None:
        """Why this connector cannot be paid for now (a catalog key), or None."""
        if self.edge.chargers.connected(charger_id) is None:
            return "pay.err.offline"
        return None

    # -- the site wallet ---------------------------------------------------------------------------------
    async def pay_from_wallet(self, charger_id: str, connector: int, who: str, pin: str) -> tuple[dict, str]:
        """Check the PIN, hold, and send the start: (the pay session, the secret of its page). Raises
        `pay.PayError` with what the driver is told."""
        store = self.edge.store
        wallet = pay.find_wallet(store.db.conn, who.strip())
        if wallet["blocked"]:
            raise pay.PayError("pay.err.blocked", "this account is blocked")
        locked = pay.pin_locked(wallet)
        if locked:
            raise pay.PayError("pay.err.locked", "too many wrong PINs: locked for a while", until=locked)
        ok = await asyncio.to_thread(check_secret, pin, wallet["pin_hash"])  # scrypt: off the loop
        if not wallet["pin_hash"]:
            raise pay.PayError("pay.err.no_pin", "this account has no PIN yet: ask the site owner for one")
        locked = await store.write(lambda c: pay.record_pin(c, wallet["id"], ok))
        if locked:
            log.warning("pay: the PIN of account %d is locked until %s after wrong tries", wallet["id"], locked)
            raise pay.PayError("pay.err.locked", "too many wrong PINs: locked for a while", until=locked)
        if not ok:
            raise pay.PayError("pay.err.pin_wrong", "wrong PIN")
        if self.connector_ok(charger_id, connector):
            raise pay.PayError("pay.err.offline", "the charger is not connected")
        token, token_hash = pay.new_secret()
        money = self.money()
        row = await store.write(lambda c: pay.start_wallet(
            c, token_hash=token_hash, charger_id=charger_id, connector_id=connector, account_id=wallet["id"],
            money=money, start_timeout=self.start_timeout))
        self.launch(row)  # the hold is committed: now, and only now, the charger is told
        return row, token

    # -- QR Ph through the provider --------------------------------------------------------------------------
    async def pay_by_qrph(self, charger_id: str, connector: int, phone_text: str, amount_text: str) \
            -> tuple[dict, str]:
        """Reserve the connector and ask the provider for a QR code for the amount: (the pay session, the
        secret of its page). The hold and the start come with the provider's webhook (`webhook`)."""
        phone = pay.normalise_phone(phone_text)
        _, low, high = self.amounts()
        try:
            amount = to_minor(amount_text.strip(), billing.SETTINGS.exponent)
        except MoneyError:
            amount = -1
        if not low <= amount <= high:
            raise pay.PayError("pay.err.amount", f"the amount must be from {low} to {high}", low_minor=low,
                               high_minor=high)
        if not self.qrph_offered or self.provider is None:
            raise pay.PayError("pay.err.provider", "QR payment is unavailable right now")
        if self.connector_ok(charger_id, connector):
            raise pay.PayError("pay.err.offline", "the charger is not connected")
        token, token_hash = pay.new_secret()
        minutes = self.edge.cfg.pay.payment_minutes
        store = self.edge.store
        row = await store.write(lambda c: pay.begin_qrph(
            c, token_hash=token_hash, charger_id=charger_id, connector_id=connector, phone=phone,
            amount_minor=amount, expires_s=minutes * 60))
        try:
            shown = await self.provider.create(
                amount_minor=amount, currency=billing.SETTINGS.currency, reference=row["code"],
                description=f"EV charging at {self.edge.cfg.site.name or self.edge.cfg.site.id},"
                            f" {charger_id} connector {connector}", expires_s=minutes * 60)
        except ProviderError as e:
            self.provider_up = not e.unreachable
            self._probed = time.monotonic()
            why = f"the payment provider: {e}"
            log.warning("pay %s: %s", row["code"], why)
            await store.write(lambda c: pay.expire(c, row["id"], why))
            raise pay.PayError("pay.err.provider", why) from None
        await store.write(lambda c: pay.set_provider_ref(c, row["id"], shown.ref, shown.qr_image))
        log.info("pay %s: QR Ph for %d at %s:%d (%s)", row["code"], amount, charger_id, connector, shown.ref)
        return row, token

    async def webhook(self, headers: Any, body: bytes) -> dict:
        """A provider's webhook: verified (raises `WebhookRefused`), recorded by its id and applied in one
        commit; a payment that made the hold sends the start command, after that commit."""
        assert self.provider is not None
        event = self.provider.verify(headers, body)
        money = self.money()
        result = await self.edge.store.write(lambda c: pay.take_event(
            c, self.provider.name, event, body.decode("utf-8", "replace"), money=money,
            start_timeout=self.start_timeout))
        row = result["pay"]
        if result["new"] and event.kind == "paid" and row is not None and row["state"] == "starting":
            self.launch(row)
        if result["outcome"] == "unresolved":
            log.warning("pay: %s event %s kept for the owner: %s", self.provider.name, event.id, result["note"])
        return {"event": event.id, "outcome": result["outcome"], "note": result["note"]}

    # -- the start -----------------------------------------------------------------------------------------
    def launch(self, row: dict) -> None:
        task = asyncio.create_task(self.start(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, row: dict) -> None:
        """Tell the charger to start for the pay session; a refusal (or no answer) releases the hold at once."""
        charger = self.edge.chargers.connected(row["charger_id"])
        self._remote_ids += 1
        version = charger.version if charger is not None else "1.6"
        action, payload = remote_start(version, row["connector_id"], pay.id_tag(row["code"]), self._remote_ids,
                                       token_type="Central")
        outcome = await calls.run(self.edge.chargers, self.edge.store, row["charger_id"], action, payload,
                                  who="pay", timeout=START_ANSWER_TIMEOUT)
        answer = (outcome.response or {}).get("status")
        if outcome.status == "answered" and answer == "Accepted":
            log.info("pay %s: %s accepted the start on connector %d", row["code"], row["charger_id"],
                     row["connector_id"])
            return
        why = (f"the charger answered {answer}" if outcome.status == "answered" else
               (outcome.error or {}).get("description") or outcome.status)
        log.warning("pay %s: %s did not start: %s; the hold is released", row["code"], row["charger_id"], why)
        await self.edge.store.write(lambda c: pay.fail(c, row["id"], f"the charger did not start ({why})"))

    # -- the sweep -----------------------------------------------------------------------------------------
    async def sweep(self) -> list[dict]:
        """End the pay sessions whose time is up: a QR nobody paid expires; a hold whose charger did not start
        is released. Returns what it ended."""
        due = pay.overdue(self.edge.store.db.conn)
        if not due:
            return []
        timeout = self.start_timeout

        def end(c: Any) -> list[dict]:
            out = []
            for pay_id, state in due:
                done = pay.expire(c, pay_id) if state == "paying" else pay.fail(
                    c, pay_id, f"the charger did not start within {timeout:g} s")
                if done is not None:
                    out.append(done)
            return out

        ended = await self.edge.store.write(end)
        for row in ended:
            log.info("pay %s: %s (%s)", row["code"], row["state"], row["message"])
            if row["state"] == "expired" and row["provider_ref"] and self.provider is not None:
                with contextlib.suppress(ProviderError):  # its QR is refused from now on; PayMongo's own end
                    await self.provider.cancel(row["provider_ref"])  # comes later
        return ended

    async def probe(self) -> None:
        """A provider that could not be reached is asked again every `PROBE_EVERY` seconds."""
        if self.provider is None or self.provider_up or time.monotonic() - self._probed < PROBE_EVERY:
            return
        self._probed = time.monotonic()
        self.provider_up = await self.provider.reachable()
        if self.provider_up:
            log.info("pay: %s can be reached again: QR Ph is offered", self.provider.name)

    async def run(self) -> None:
        """The sweep, every second, for as long as the web process runs (at once on start: after a crash); the
        chargers' displays beside it (a slow charger never holds the sweep up)."""
        self._tasks.add(asyncio.create_task(self.displays.run()))
        while True:
            with contextlib.suppress(Exception):
                await self.sweep()
            with contextlib.suppress(Exception):
                await self.probe()
            await asyncio.sleep(1.0)
