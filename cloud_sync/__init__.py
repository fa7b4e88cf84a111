"""sitekeeper cloud_sync: the MQTT bridge to the cloud ledger (built in a later issue)."""
