"""Integration tests against a real Asterisk (scripts/asterisk-sandbox) with sipp."""
