"""CSMS-initiated commands, the one place that turns an intent into each OCPP version's message; today the
chargers' local authorization lists (`local_list`)."""
