"""GGUF files: a validating header index and a reader for files we did not write."""
