"""The chat's right-hand panel: the model's memory needs and every setting that shapes a reply."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.chat.engine import KV_CACHE_TYPES, ChatSettings, ModelFacts, estimate_memory
from quantdesk.core.chat.templates import TEMPLATES
from quantdesk.core.fit import FitEstimate, Verdict
from quantdesk.core.units import human_bytes
from quantdesk.ui.widgets import fit_html, label


def _spin(lo: int, hi: int, special: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    if special:
        s.setSpecialValueText(special)
    return s


def _dspin(lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    return s


class ChatSettingsPanel(QFrame):
    changed = Signal()  # any setting changed (the page saves them for the model)
    reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SettingsPane")
        self.setFixedWidth(296)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        inner = QWidget()
        inner.setObjectName("SettingsInner")
        inner.setStyleSheet("#SettingsInner { background: transparent; }")
        scroll.setWidget(inner)
        col = QVBoxLayout(inner)
        col.setContentsMargins(16, 16, 20, 16)
        col.setSpacing(8)

        col.addWidget(label("Model", "SectionTitle"))
        self.model_name = label("No model", wrap=True)
        col.addWidget(self.model_name)
        self.model_facts = label("", "Small", wrap=True)
        col.addWidget(self.model_facts)
        self.memory = label("", wrap=True)
        self.memory.setTextFormat(Qt.TextFormat.RichText)
        col.addWidget(self.memory)

        col.addSpacing(8)
        col.addWidget(label("System prompt", "SectionTitle"))
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("e.g. You are a concise, friendly assistant.")
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setFixedHeight(80)
        self.system_prompt.setTabChangesFocus(True)
        col.addWidget(self.system_prompt)

        col.addSpacing(8)
        col.addWidget(label("Sampling", "SectionTitle"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setVerticalSpacing(6)
        self.temperature = _dspin(0.0, 2.0, 0.05)
        self.temperature.setToolTip("0 always picks the most likely token (greedy)")
        self.top_p = _dspin(0.0, 1.0, 0.05)
        self.top_k = _spin(0, 1000, "off")
        self.min_p = _dspin(0.0, 1.0, 0.01)
        self.repeat_penalty = _dspin(0.5, 2.0, 0.05)
        self.seed = _spin(-1, 2_147_483_647, "random")
        self.max_tokens = _spin(1, 32768)
        for name, w in (
            ("Temperature", self.temperature),
            ("Top P", self.top_p),
            ("Top K", self.top_k),
            ("Min P", self.min_p),
            ("Repeat penalty", self.repeat_penalty),
            ("Seed", self.seed),
            ("Max tokens", self.max_tokens),
        ):
            w.setAccessibleName(name)
            form.addRow(name, w)
        col.addLayout(form)

        col.addSpacing(8)
        col.addWidget(label("Loading", "SectionTitle"))
        col.addWidget(label("These apply when the model is next loaded.", "Small", wrap=True))
        form2 = QFormLayout()
        form2.setVerticalSpacing(6)
        self.context_length = _spin(256, 131072)
        self.context_length.setSingleStep(256)
        self.threads = _spin(0, 256, "auto")
        self.gpu_layers = _spin(-1, 999, "auto")
        self.gpu_layers.setToolTip(
            "How many layers run on the GPU: 'auto' offloads as many as fit in free "
            "GPU memory; a number larger than the model's layers offloads all of them"
        )
        self.kv_cache = QComboBox()
        for t in KV_CACHE_TYPES:
            self.kv_cache.addItem(t, t)
        self.kv_cache.setToolTip("q8_0 and q4_0 shrink the cache; they turn on flash attention")
        self.template = QComboBox()
        self.template.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.template.setMinimumContentsLength(12)
        self.template.setToolTip("The chat template: the model file's own, or a built-in one for its family")
        self.template.addItem("From the model file", "")
        for key, tmpl in TEMPLATES.items():
            self.template.addItem(tmpl.label, key)
        for name, widget in (
            ("Context", self.context_length),
            ("Threads", self.threads),
            ("GPU layers", self.gpu_layers),
            ("KV cache", self.kv_cache),
            ("Template", self.template),
        ):
            widget.setAccessibleName(name)
            form2.addRow(name, widget)
        col.addLayout(form2)
        self.gpu_note = label("", "Small", wrap=True)
        col.addWidget(self.gpu_note)
        self.reset_button = QPushButton("Reset to the model's defaults")
        self.reset_button.clicked.connect(self.reset_requested)
        col.addWidget(self.reset_button)
        col.addStretch(1)

        self._facts: ModelFacts | None = None
        self._loading = False
        for w in (self.temperature, self.top_p, self.min_p, self.repeat_penalty):
            w.valueChanged.connect(self._changed)
        for w in (self.top_k, self.seed, self.max_tokens, self.context_length, self.threads, self.gpu_layers):
            w.valueChanged.connect(self._changed)
        self.kv_cache.currentIndexChanged.connect(self._changed)
        self.template.currentIndexChanged.connect(self._changed)
        self.system_prompt.textChanged.connect(self._changed)

    def set_gpu_support(self, supported: bool, reason: str) -> None:
        self.gpu_layers.setEnabled(supported)
        self.gpu_note.setText(reason)

    def set_model(self, facts: ModelFacts | None) -> None:
        self._facts = facts
        if facts is None:
            self.model_name.setText("No model selected")
            self.model_facts.setText("")
            self.memory.setText("")
            return
        self.model_name.setText(facts.path.name)
        ctx = f"{facts.context_train:,} tokens trained context" if facts.context_train else "context unknown"
        self.model_facts.setText(
            f"{facts.architecture} · {human_bytes(facts.size_bytes)} · {ctx}"
            + ("" if facts.has_template else " · no chat template in the file")
        )
        if facts.context_train:
            self.context_length.setMaximum(max(256, facts.context_train))
        self._update_memory()

    def settings(self) -> ChatSettings:
        return ChatSettings(
            system_prompt=self.system_prompt.toPlainText(),
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(),
            seed=self.seed.value(),
            max_tokens=self.max_tokens.value(),
            context_length=self.context_length.value(),
            threads=self.threads.value(),
            gpu_layers=self.gpu_layers.value() if self.gpu_layers.isEnabled() else 0,
            kv_cache_type=self.kv_cache.currentData(),
            template_override=self.template.currentData(),
        )

    def set_settings(self, s: ChatSettings) -> None:
        self._loading = True
        try:
            if self.system_prompt.toPlainText() != s.system_prompt:
                self.system_prompt.setPlainText(s.system_prompt)
            self.temperature.setValue(s.temperature)
            self.top_p.setValue(s.top_p)
            self.top_k.setValue(s.top_k)
            self.min_p.setValue(s.min_p)
            self.repeat_penalty.setValue(s.repeat_penalty)
            self.seed.setValue(s.seed)
            self.max_tokens.setValue(s.max_tokens)
            self.context_length.setValue(s.context_length)
            self.threads.setValue(s.threads)
            self.gpu_layers.setValue(s.gpu_layers)
            self.kv_cache.setCurrentIndex(max(0, self.kv_cache.findData(s.kv_cache_type)))
            self.template.setCurrentIndex(max(0, self.template.findData(s.template_override)))
        finally:
            self._loading = False
        self._update_memory()

    def _changed(self) -> None:
        if self._loading:
            return
        self._update_memory()
        self.changed.emit()

    def _update_memory(self) -> None:
        if self._facts is None:
            return
        self.memory.setText(fit_html(self._estimate()))

    def _estimate(self) -> FitEstimate:
        assert self._facts is not None
        return estimate_memory(self._facts, self.settings())  # free RAM and VRAM read now

    def memory_verdict(self) -> Verdict:
        if self._facts is None:
            return Verdict.FITS
        return self._estimate().verdict
