"""SQLite and nothing else: the store with its writer thread and migrations (`sqlite`), the row writers the
controller's Persist actions name (`ops`), the MQTT outbox (`outbox`), the message journal (`journal`) and
online backups (`backup`). No business rule lives here: billing decides, the store keeps."""

from edge.store.sqlite import Store

__all__ = ["Store"]
