"""The edge's web app (FastAPI, in the daemon's loop): `/healthz`, `/metrics` and the JSON API (`app`); the
home of the owner pages, their login and the /pay pages to come."""
