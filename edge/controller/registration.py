"""The local controller's part for chargers the site has not accepted yet (`ocpp.new_chargers`, standalone; B02,
B03): a charger works only once its BootNotification is Accepted. Until then it may send BootNotification, and
while Pending what the edge asked of it (its reports, what a TriggerMessage asked for); anything else is
answered SecurityError. A mixin of `ChargerLink` (it shares the link's state), like `BillingPart`.
"""

from __future__ import annotations

from edge.controller.actions import (
    Action,
    Asked,
    LinkSettings,
    LinkState,
    Notice,
    Register,
    Registered,
    SendCharger,
    Waits,
)
from edge.controller.wire import Call, call_error_text


class RegistrationPart:
    def _init_registration(self, settings: LinkSettings, state: LinkState) -> None:
        self.accepted = not settings.standalone or settings.new_chargers == "accept" or state.accepted
        self.boot_status: str | None = None  # the last BootNotification answer while not accepted
        self.triggered: set[str] = set()  # what the edge's TriggerMessages asked this charger to send

    def _not_accepted(self, call: Call) -> list[Action]:
        """A CALL of a charger the site has not accepted (yet): its BootNotification asks whether it may work
        here; while Pending, what the edge asked it for is answered as usual (B02.FR.02/03); anything else,
        and everything while Rejected or before a BootNotification, gets SecurityError (B02.FR.09, B03.FR.07)."""
        a = call.action
        if a == "BootNotification":
            return self._ask(Asked(call, Waits.REGISTER), Register(self.charger_id, self.settings.new_chargers))
        if self.boot_status == "Pending" and (a in ("NotifyReport", "NotifyMonitoringReport")
                                               or a in self.triggered):
            self.triggered.discard(a)
            return self._answer_locally(call, offline=False)
        why = (f"{a} before a BootNotification" if self.boot_status is None
               else f"{a} while its BootNotification is {self.boot_status}")
        return [Notice("not_accepted", f"refused {why} (waiting for the owner: sitekeeper charger "
                                       f"{self.charger_id} approve)"),
                SendCharger(call_error_text(call.msg_id, "SecurityError",
                                            f"this charger is not accepted yet: {why}"))]

    def _registered(self, call: Call, result: Registered) -> list[Action]:
        """The site's word on a BootNotification: answer it, and work from now on if Accepted."""
        self.boot_status = result.status
        self.accepted = result.status == "Accepted"
        return self._answer_locally(call, offline=False, boot=result.status)
