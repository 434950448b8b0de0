"""The studies: one module per study, each following the protocol in ``docs/studies.md``."""
