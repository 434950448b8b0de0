"""ensim's studies: one module per study (see docs/studies.md)."""
