"""The Discover page's dialog: TokenDialog, where a Hugging Face access token is entered, checked
against the Hub (in a job, so the window never waits on the network) and saved."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLineEdit, QVBoxLayout, QWidget

from quantdesk.core.errors import as_sentence, explain
from quantdesk.core.hub import client as hub
from quantdesk.core.jobs import Job
from quantdesk.ui.widgets import label, while_alive


class TokenDialog(QDialog):
    """Enter a Hub access token; it is checked against the Hub and saved where huggingface_hub
    keeps it (HF_HOME/token), so every Hugging Face tool on this machine shares it."""

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Hugging Face token")
        self.setMinimumWidth(440)
        col = QVBoxLayout(self)
        col.setSpacing(8)
        col.addWidget(
            label(
                "A token lets you download gated models whose terms you accepted on the Hub, and "
                "your private models. Create a read token in your Hugging Face settings "
                "(Access Tokens).",
                wrap=True,
            )
        )
        self.status = label("", "Muted", wrap=True)
        col.addWidget(self.status)
        self.edit = QLineEdit()
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_…")
        self.edit.setAccessibleName("Hugging Face access token")
        col.addWidget(self.edit)
        self.message = label("", wrap=True)
        col.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.save_button = buttons.addButton("Check and save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setProperty("primary", True)
        self.remove_button = buttons.addButton("Remove saved token", QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.save_button.clicked.connect(self._save)
        self.remove_button.clicked.connect(self._remove)
        col.addWidget(buttons)
        self._update_status()

    def _update_status(self) -> None:
        source = hub.token_source()
        self.status.setText(
            {
                "HF_TOKEN": "The HF_TOKEN environment variable is set; it is used instead of a saved token.",
                "saved": "A token is saved on this machine.",
                "": "No token yet.",
            }[source]
        )
        self.remove_button.setEnabled(source == "saved")

    def _save(self) -> None:
        token = self.edit.text().strip()
        if not token:
            self.message.setText("Paste a token first.")
            return
        self.save_button.setEnabled(False)
        self.message.setText("Checking the token with the Hub…")
        handle = self.ctx.jobs.start(Job("Checking the Hub token", lambda report, cancel: hub.save_token(token)))
        handle.finished.connect(while_alive(self, self._saved))
        handle.failed.connect(while_alive(self, lambda e, _tb: self._not_saved(e)))

    def _saved(self, user: str) -> None:
        self.save_button.setEnabled(True)
        self.edit.clear()
        self.message.setText(f"Saved. Signed in as {user}.")
        self._update_status()

    def _not_saved(self, e: BaseException) -> None:
        self.save_button.setEnabled(True)
        reason = explain(e)
        self.message.setText(
            as_sentence(reason) if isinstance(e, hub.HubError) else f"Could not check the token: {reason}"
        )

    def _remove(self) -> None:
        hub.forget_token()
        self.message.setText("The saved token was removed.")
        self._update_status()
