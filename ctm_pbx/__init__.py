"""ctm-pbx: self-hosted call tracking for Asterisk.

Three rings, imports pointing inward:

- ``ctm_pbx.core``: pure, synchronous domain logic (model, routing, call flow).
- ``ctm_pbx.adapters``: I/O (YAML config, SQLite store, ARI client).
- ``ctm_pbx.edges``: wiring (CLI, daemon, web app).
"""

__version__ = "0.1.0"
