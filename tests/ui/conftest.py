"""Every UI test runs under the app's own QApplication set-up (style, error hooks, and garbage
collection kept on the GUI thread), whichever test module builds widgets first."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def quantdesk_application(qapp):  # noqa: ANN001 - pytest-qt's fixture
    from quantdesk.ui.app import make_application

    return make_application([])
