"""`forms` commands: simulate (filled in by its subsystem)."""
