"""`forms` commands: estimate (filled in by its subsystem)."""
