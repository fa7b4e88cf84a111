"""sitekeeper edge daemon: OCPP proxy / local CSMS, store, web app."""
