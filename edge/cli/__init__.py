"""The `sitekeeper` command: the daemon and tools (`main`), the site owner's commands (`owner`)."""
