"""The sans-I/O core: one charger's OCPP behaviour as a plain object fed events (`ChargerLink`, in `link`),
answering with actions (`actions`). It reads no socket, no database and no clock of its own; `edge.ocpp` is
the asyncio shell that carries its actions out. Modules: link (the state machine), site_cards (the site's
own cards: decisions, holds, stop at the hold), replay (upstream's return, 1.6 id rewriting), answers (what
the edge says as the CSMS), observe (what it records), authorize (offline decisions, the cache), wire
(OCPP-J framing and schemas)."""

from edge.controller.actions import (
    DOWN,
    LIVE,
    REPLAYING,
    Action,
    Ask,
    CloseCharger,
    EdgeCallDone,
    Learned,
    LinkSettings,
    LinkState,
    Notice,
    Persist,
    QueueItem,
    ResetUpstream,
    SendCharger,
    SendUpstream,
)
from edge.controller.link import ChargerLink

__all__ = ["ChargerLink", "LinkSettings", "LinkState", "QueueItem", "Action", "SendCharger", "SendUpstream",
           "Persist", "CloseCharger", "ResetUpstream", "EdgeCallDone", "Ask", "Notice",
           "Learned", "DOWN", "REPLAYING",
           "LIVE"]
