"""Example programs that use heslock from the outside (each has its own README)."""
