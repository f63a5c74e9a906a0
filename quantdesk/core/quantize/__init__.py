"""Quantization: the per-tensor plan, the streaming run, the output writer and importance matrices."""
