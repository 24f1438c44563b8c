"""Shared helpers used by every layer: settings, warehouse writes, metadata, partitions."""
