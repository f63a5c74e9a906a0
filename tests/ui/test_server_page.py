"""The Server page: start and stop the real server from the window, see its models and requests."""

from __future__ import annotations

import socket

import httpx2 as httpx
import pytest

from quantdesk.ui.context import AppContext
from quantdesk.ui.server_page import NETWORK_HOST, ServerPage


@pytest.fixture(autouse=True)
def no_other_models(no_other_apps):
    """Only the starter model, never this machine's Hugging Face cache or LM Studio folder."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def page(qtbot):
    page = ServerPage(AppContext())
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    yield page
    page.shutdown()


def test_start_serve_log_and_stop(page, qtbot):
    page.port_box.setValue(free_port())
    assert not page.running and page.toggle_button.text() == "Start server"
    page.toggle_button.click()
    qtbot.waitUntil(lambda: page.running, timeout=20000)
    assert page.toggle_button.text() == "Stop server"
    address = page.address.text()
    assert address == f"http://127.0.0.1:{page.port_box.value()}/v1"
    assert not page.port_box.isEnabled()  # the running server's settings are fixed
    assert page.models_hint.isVisible()

    reply = httpx.post(
        address + "/chat/completions",
        json={"model": "starter", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        timeout=120,
    )
    assert reply.status_code == 200
    qtbot.waitUntil(lambda: "POST /v1/chat/completions 200" in page.log_view.toPlainText(), timeout=5000)
    qtbot.waitUntil(lambda: page.models.rowCount() == 1, timeout=5000)
    assert page.models.data(page.models.index(0, 0)) == "starter"
    assert page.models.data(page.models.index(0, 2)) == "loaded"
    assert "MB" in page.models.data(page.models.index(0, 3))
    assert page.models.data(page.models.index(0, 5)) == "1"  # served
    assert not page.models_hint.isVisible()
    assert address in page.snippet_views["Python"].toPlainText()

    page.toggle_button.click()
    qtbot.waitUntil(lambda: not page.running and page.toggle_button.isEnabled(), timeout=20000)
    assert page.toggle_button.text() == "Start server"
    assert page.models.rowCount() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(address.removesuffix("/v1") + "/health", timeout=2)


def test_serving_on_the_network_makes_a_key(page):
    assert not page.key_row.isVisible()
    page.network_box.setChecked(True)
    key = page.key_edit.text()
    assert key.startswith("qd-") and len(key) > 30 and page.key_row.isVisible()
    config = page.config()
    assert config.host == NETWORK_HOST and config.api_key == key  # never started here: tests bind 127.0.0.1
    assert f"Bearer {key}" in page.snippet_views["curl"].toPlainText()
    assert "0.0.0.0" not in page.address.text()  # clients dial this machine's address
    page.new_key_button.click()
    assert page.key_edit.text() != key
    assert page.ctx.setting("server.api_key") == page.key_edit.text()
    page.network_box.setChecked(False)
    assert page.config().api_key == "" and page.config().host == "127.0.0.1"


def test_a_taken_port_is_said_in_words(page, qtbot):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        page.port_box.setValue(taken.getsockname()[1])
        page.toggle_button.click()
        qtbot.waitUntil(lambda: page.error.isVisible(), timeout=10000)
    assert "already in use" in page.error.message.text()
    assert not page.running and page.toggle_button.isEnabled()
