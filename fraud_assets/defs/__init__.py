"""One package per layer; the key prefix, the group and the DuckDB schema share the layer's name."""
