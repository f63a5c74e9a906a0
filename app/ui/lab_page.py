"""Lab: compare quantization levels of one model on this machine (not built yet, and says so)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QWidget

from app.ui.widgets import BasePage, EmptyState


class LabPage(BasePage):
    title = "Lab"

    def __init__(self, ctx, parent: Optional[QWidget] = None):
        super().__init__(ctx, parent)
        self.body.addWidget(EmptyState(
            "The Lab is not built yet",
            "The Lab will run the same evaluation text through several quantization levels of a model "
            "and show size, perplexity, KL divergence and speed side by side.",
        ), 1)
