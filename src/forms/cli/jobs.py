"""`forms` commands: jobs (filled in by its subsystem)."""
