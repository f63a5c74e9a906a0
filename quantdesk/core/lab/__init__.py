"""The Lab: the quant ladder, what each level costs in quality and speed on this machine."""
