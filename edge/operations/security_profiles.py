"""A charger's security profile, and raising it over OCPP (A05: 2.0.1 TC_A_19_CSMS; the 1.6 security
whitepaper's A05).

Each connection is at the profile its handshake shows (`of_connection`): TLS with a client certificate of
the charger's 3, TLS and its password 2, its password 1, nothing 0. A charger must connect at the site's
`ocpp.security_profile` or at its own minimum (`chargers.security_profile`), whichever is higher. Raising it:
the owner asks (`steps`: 2.0.1 SetNetworkProfile in a new slot, NetworkConfigurationPriority with that slot
first, Reset OnIdle; 1.6 ChangeConfiguration SecurityProfile), the site records what was asked
(`chargers.security_upgrade`), and the charger's own minimum becomes the new profile only once it has
connected at it (`seen`): until then its old profile still works, as a charger that cannot reach the edge at
the new one falls back to it (A05.FR.08); from then the old one is refused. A profile is never lowered over
OCPP.
"""

from __future__ import annotations

import sqlite3

SLOT_DEFAULT = 2  # the network profile slot a 2.0.1 charger is given when its current slots are not known


class ProfileError(ValueError):
    """A raise that cannot be done: the message says why."""


def of_connection(tls: bool, cert_ok: bool, password_ok: bool) -> int:
    if tls and cert_ok:
        return 3
    if password_ok:
        return 2 if tls else 1
    return 0


def standing(conn: sqlite3.Connection, charger_id: str) -> tuple[int, int | None]:
    """(the charger's own minimum, 0 if none; the profile asked for and not yet seen, if any)."""
    row = conn.execute("SELECT security_profile, security_upgrade FROM chargers WHERE id = ?",
                       (charger_id,)).fetchone()
    return (row[0] or 0, row[1]) if row else (0, None)


def seen(conn: sqlite3.Connection, charger_id: str, profile: int) -> bool:
    """The charger connected at `profile`: if that reaches the profile asked for, it is its minimum from now
    on. Returns whether it changed."""
    cur = conn.execute("UPDATE chargers SET security_profile = security_upgrade, security_upgrade = NULL"
                       " WHERE id = ? AND security_upgrade IS NOT NULL AND security_upgrade <= ?",
                       (charger_id, profile))
    return cur.rowcount > 0


def asked(conn: sqlite3.Connection, charger_id: str, profile: int | None) -> None:
    """The owner asked the charger to move to `profile` (None: the move did not happen)."""
    conn.execute("UPDATE chargers SET security_upgrade = ? WHERE id = ?", (profile, charger_id))


def check(site_profile: int, tls_served: bool, client_ca: bool, charger_password: bool, current: int,
          target: int) -> None:
    """Raise `ProfileError` if the site cannot take the charger at `target` (from `current`)."""
    if target not in (1, 2, 3):
        raise ProfileError(f"a security profile is 1, 2 or 3, got {target}")
    if target <= max(current, site_profile):
        raise ProfileError(f"the charger is at profile {max(current, site_profile)} already; a profile is only"
                           " ever raised over OCPP")
    if target >= 2 and not tls_served:
        raise ProfileError("profile 2 and 3 need TLS: set ocpp.tls_port (with ocpp.tls_cert and ocpp.tls_key)")
    if target == 3 and not client_ca:
        raise ProfileError("profile 3 needs ocpp.client_ca, the CA the chargers' certificates chain to")
    if target in (1, 2) and not charger_password:
        raise ProfileError("profile 1 and 2 need the charger's password under [ocpp.chargers.\"<id>\"] (and on"
                           " the charger: AuthorizationKey in 1.6, SecurityCtrlr.BasicAuthPassword in 2.0.1)")


def steps(version: str, target: int, url: str, priority: str | None = None,
          message_timeout: int = 30) -> list[tuple[str, dict]]:
    """The CALLs that raise a charger to `target` (`url`: where it reaches the edge at it; `priority`: its
    NetworkConfigurationPriority now, if known: the new slot goes first, the others stay behind it)."""
    if version == "1.6":
        return [("ChangeConfiguration", {"key": "SecurityProfile", "value": str(target)})]
    slots = [s.strip() for s in (priority or "").split(",") if s.strip().isdigit()]
    slot = max([int(s) for s in slots], default=SLOT_DEFAULT - 1) + 1
    order = ",".join([str(slot)] + (slots or [str(SLOT_DEFAULT - 1)]))
    return [
        ("SetNetworkProfile", {"configurationSlot": slot, "connectionData": {
            "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
            "messageTimeout": message_timeout, "securityProfile": target, "ocppInterface": "Wired0"}}),
        ("SetVariables", {"setVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                               "variable": {"name": "NetworkConfigurationPriority"},
                                               "attributeValue": order}]}),
        ("Reset", {"type": "OnIdle"}),
    ]
