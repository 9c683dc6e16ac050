"""`forms` commands: data (filled in by its subsystem)."""
