"""Command-line interface: ``netclock <command> ...``."""
