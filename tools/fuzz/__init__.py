"""Quantdesk's own seeded fuzzer over every reader of untrusted data (`make fuzz`; README in __main__)."""
