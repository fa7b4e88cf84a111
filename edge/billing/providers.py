"""The payment provider the site is configured with (`pay.provider`), behind the interface of
`edge.billing.payments`; the pay pages (`edge.web.pay_desk`) take it from here."""

from __future__ import annotations

from edge.billing.payments import Provider
from edge.config import PayConfig


def provider_from_config(pay: PayConfig) -> Provider | None:
    """The configured provider (None: the site wallet only). A provider's module (and its HTTP client) is
    imported only when the site uses it: the web process starts sooner without."""
    if pay.provider == "paymongo":
        from edge.billing.paymongo import PayMongo

        c = pay.paymongo
        return PayMongo(c.secret_key, c.webhook_secret, api_base=c.api_base, timeout=c.timeout,
                        tolerance=c.webhook_tolerance)
    return None
