"""The window (PySide6). Qt is imported only below this package; see main_window.py for how pages fit."""
