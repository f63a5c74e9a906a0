"""Settings: the look, where the app keeps its files, and what this machine can do."""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QComboBox, QFormLayout, QFrame, QPushButton, QWidget

from quantdesk.core import paths
from quantdesk.core.hardware import cpu_summary, memory
from quantdesk.core.units import human_bytes
from quantdesk.ui import theme
from quantdesk.ui.widgets import BasePage, label

THEMES = [("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")]


class SettingsPage(BasePage):
    title = "Settings"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        card = QFrame()
        card.setObjectName("Card")
        form = QFormLayout(card)
        form.setContentsMargins(16, 16, 16, 16)
        form.setHorizontalSpacing(24)
        form.setVerticalSpacing(12)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)

        self.theme_box = QComboBox()
        self.theme_box.setAccessibleName("Appearance")
        for key, text in THEMES:
            self.theme_box.addItem(text, key)
        current = ctx.setting("theme", "system")
        self.theme_box.setCurrentIndex(max(0, [k for k, _ in THEMES].index(current) if current in dict(THEMES) else 0))
        self.theme_box.currentIndexChanged.connect(self._theme_changed)
        form.addRow("Appearance", self.theme_box)

        data = paths.data_dir()
        open_data = QPushButton(str(data))
        open_data.setToolTip("Open the data folder (models, conversations, settings, logs)")
        open_data.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(data))))
        form.addRow("Data folder", open_data)
        form.addRow("Log file", label(str(paths.log_file()), "Muted"))

        mem = memory()
        form.addRow("Processor", label(cpu_summary(), "Muted"))
        form.addRow(
            "Memory", label(f"{human_bytes(mem.available_bytes)} free of {human_bytes(mem.total_bytes)}", "Muted")
        )
        self.backend_label = label("checked when Chat first loads a model", "Muted")
        form.addRow("llama.cpp", self.backend_label)
        self.body.addWidget(card)
        self.body.addStretch(1)

    def on_shown(self) -> None:
        from quantdesk.core.hardware import describe_backend

        try:
            text = describe_backend()
        except Exception as e:  # a broken llama.cpp install is reported here, not raised
            self.backend_label.setText(f"not available: {e}")
            return
        self.backend_label.setText(text)

    def _theme_changed(self) -> None:
        self.ctx.set_setting("theme", self.theme_box.currentData())
        app = QApplication.instance()
        if isinstance(app, QApplication):  # always, in this app; instance() is typed QCoreApplication
            theme.apply(app)
