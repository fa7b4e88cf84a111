"""The edge's web app (FastAPI, in a process of its own beside the daemon's): `/healthz`, `/metrics`, the JSON
API and the owner's pages (`app`); the process and its bridge to the daemon (`process`, `bridge`); the home of
the /pay pages to come."""
