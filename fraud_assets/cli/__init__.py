"""Command-line entry points used by the Makefile."""
