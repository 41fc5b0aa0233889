"""The sections of ``config.yaml``, one module each; ``config_loader`` puts them together."""
