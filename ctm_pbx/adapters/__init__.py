"""Adapters: the outside world (YAML files, databases, Asterisk) behind plain functions."""
