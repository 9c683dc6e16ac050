"""`forms` commands: train (filled in by its subsystem)."""
