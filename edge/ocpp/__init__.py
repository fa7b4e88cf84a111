"""The asyncio shell around the controller: the chargers' WebSocket server and its handshake (`server`), one
charger's connection and its upstream link (`session`), carrying out the controller's Persist actions
(`persist`), the WebSocket transport on picows (`transport`, `deflate`), queues replayed for chargers that
are away (`queue_replay`), and the charger simulator (`simulate`)."""
