"""The asyncio shell around the controller: the chargers' WebSocket server and the upstream links
(`server`), the WebSocket transport on picows (`transport`, `deflate`), queues replayed for chargers that are
away (`queue_replay`), and the charger simulator (`simulate`)."""
