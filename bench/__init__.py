"""Benchmarks: speed and memory against llama.cpp measured in the same run (`make bench`)."""
