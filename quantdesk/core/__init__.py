"""The domain of Quantdesk. Nothing below this package imports Qt (tests/core/test_layers.py checks)."""
