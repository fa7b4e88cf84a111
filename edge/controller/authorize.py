"""Who may charge: the edge's authorization decision for an id tag (1.6) or id token (2.0.1).

One `Authorizer` per site. Cards the site knows are decided by `edge.billing` (the controller asks it when
`knows(uid)`: a snapshot of the site's cards, which the shell refreshes when the card list changes, so the
controller reads no database); for the others: the authorization cache (every idTagInfo / idTokenInfo upstream has answered, with an
expiry), then the rule for unknown cards: in standalone mode `site.accept_unknown_cards`, in proxy mode
while upstream is away `upstream.offline_accept_unknown`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from edge.money import is_pay_tag, lookup_key


@dataclass(frozen=True, slots=True)
class SiteCard:
    """What the controller knows of a card of the site's own, between billing's decisions: whether it may
    be used at all (active, its account not blocked) and where (a personal card's chargers; None: anywhere)."""

    usable: bool = True
    chargers: frozenset[str] | None = None
    group: str | None = None  # its group id (1.6 parentIdTag, 2.0.1 groupIdToken)


@dataclass(slots=True)
class CacheEntry:
    status: str
    expires: float  # unix time


def id_token_of(payload: dict) -> str | None:
    """The card identifier in a 1.6 ``idTag`` or a 2.0.1 ``idToken`` object."""
    tag = payload.get("idTag")
    if isinstance(tag, str):
        return tag
    token = payload.get("idToken")
    if isinstance(token, dict) and isinstance(token.get("idToken"), str):
        return token["idToken"]
    return None


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Authorizer:
    def __init__(self, *, accept_unknown_standalone: bool = True, offline_accept_unknown: bool = False,
                 cache_ttl_s: float = 86400.0, cache: dict[str, CacheEntry] | None = None,
                 known: set[str] | dict[str, SiteCard] | None = None, authority: str = "edge"):
        """`known`: the site's cards (then `edge.billing` decides, not this object; `set_known` replaces it);
        `authority`: "edge" or "upstream" (who decides for the site's cards while upstream is up)."""
        self.known: dict[str, SiteCard] = {}
        self.set_known(known or ())
        self.authority = authority
        self.accept_unknown_standalone = accept_unknown_standalone
        self.offline_accept_unknown = offline_accept_unknown
        self.cache_ttl_s = cache_ttl_s
        self.cache: dict[str, CacheEntry] = cache if cache is not None else {}

    def knows(self, uid: str) -> bool:
        """A card of the site's, or a pay session's id tag (billing decides both)."""
        return uid in self.known or is_pay_tag(uid)

    def set_known(self, cards: set[str] | list[str] | tuple | dict[str, SiteCard]) -> None:
        self.known = dict(cards) if isinstance(cards, dict) else {uid: SiteCard() for uid in cards}

    def group_of(self, id_tag: str | None) -> str | None:
        """The group of a card of the site's (None for any other)."""
        card = self.known.get(lookup_key(id_tag)) if id_tag else None
        return card.group if card else None

    def at_end(self, uid: str, charger_id: str, version: str) -> str:
        """The status to answer for a card of the site's at the end of its session (1.6 StopTransaction,
        2.0.1 TransactionEvent Ended): the card's own, not the rule for unknown cards (a good card was once
        told Invalid after a normal session when unknown cards are refused)."""
        card = self.known.get(uid)
        if card is None:  # a pay session's: paid for, whatever its end
            return "Accepted"
        if not card.usable:
            return "Blocked"
        if card.chargers is not None and charger_id not in card.chargers:
            return "Invalid" if version == "1.6" else "NotAtThisLocation"
        return "Accepted"

    def decide(self, charger_id: str, id_tag: str | None, *, standalone: bool, now: float | None = None) -> str:
        """The status to answer for `id_tag` when the edge decides (standalone, or proxy while offline)."""
        if id_tag is None:
            return "Accepted"  # 2.0.1 events without a token (cable plugged in before authorization)
        now = time.time() if now is None else now
        entry = self.cache.get(id_tag)
        if entry is not None:
            if entry.expires > now:
                return entry.status
            if entry.status == "Accepted":
                return "Expired" if not (self.offline_accept_unknown and not standalone) else "Accepted"
        if standalone:
            return "Accepted" if self.accept_unknown_standalone else "Invalid"
        return "Accepted" if self.offline_accept_unknown else "Invalid"

    def learn(self, id_tag: str, info: dict, now: float | None = None) -> dict | None:
        """What to remember of upstream's answer for `id_tag` (None if nothing): the cache row, for
        `remember` and the store. Changes nothing itself: the controller hands the row to its shell."""
        status = info.get("status")
        if not isinstance(status, str):
            return None
        now = time.time() if now is None else now
        expires = now + self.cache_ttl_s
        stated = _parse_time(info.get("expiryDate") or info.get("cacheExpiryDateTime"))
        if stated is not None:
            expires = min(expires, stated)
        return {"id_tag": id_tag, "status": status, "expires": expires}

    def remember(self, row: dict) -> None:
        """Take a row from `learn` into the cache (the shell does, on its loop)."""
        self.cache[row["id_tag"]] = CacheEntry(row["status"], row["expires"])
