"""sitekeeper kiosk: the pygame touchscreen pay station (built in a later issue)."""
