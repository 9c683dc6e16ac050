"""`forms` commands: compress (filled in by its subsystem)."""
