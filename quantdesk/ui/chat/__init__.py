"""The Chat page: `page` (ChatPage, a thin Qt adapter over quantdesk.core.chat.session.ChatSession),
`settings_panel` (the model settings on the right), `widgets` (messages, transcript, composer) and
`markdown` (replies as formatted text, used only here)."""

from quantdesk.ui.chat.page import ChatPage

__all__ = ["ChatPage"]
