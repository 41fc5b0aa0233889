"""Edges: the CLI, the daemon's wiring and the web app. Wiring only, no business rules."""
