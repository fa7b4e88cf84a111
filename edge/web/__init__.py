"""The edge's web app (FastAPI, on a thread and a loop of its own beside the chargers' loop): `/healthz`,
`/metrics`, the JSON API and the owner's pages (`app`; what crosses to the chargers' loop: `across`); the home of
the /pay pages to come."""
