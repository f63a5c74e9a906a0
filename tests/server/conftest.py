"""A real server on 127.0.0.1 (a free port, uvicorn in a thread) serving the real starter model.

`serve(**config)` starts one for a test and stops it afterwards; each module shares one default
server (`server`), because loading a model costs a second and the machine is shared.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantdesk.server.runner import Server, ServerConfig


@pytest.fixture(scope="module", autouse=True)
def no_other_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The Library sees the starter model and the test's own folders, never this machine's real
    Hugging Face cache or LM Studio folder."""
    home = tmp_path_factory.mktemp("server-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home / "home"))
        mp.setenv("USERPROFILE", str(home / "home"))
        mp.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
        mp.setenv("QUANTDESK_HOME", str(home / "data"))  # each test sets its own over this
        yield


@contextlib.contextmanager
def running(**config: object) -> Iterator[Server]:
    server = Server(ServerConfig(port=0, **config))  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    stack = contextlib.ExitStack()

    def start(**config: object) -> Server:
        return stack.enter_context(running(**config))

    with stack:
        yield start


@pytest.fixture(scope="module")
def server(no_other_models: None) -> Iterator[Server]:
    with running(ttl_s=0) as s:
        yield s


@pytest.fixture
def second_model(tmp_path: Path, starter_model: Path) -> str:
    """A second Library model: a hard link (or copy) of the starter file under another name, in a
    folder added to the Library. Returns its id."""
    from quantdesk.core import library

    folder = tmp_path / "more-models"
    folder.mkdir()
    target = folder / "second-model.gguf"
    try:
        os.link(starter_model, target)
    except OSError:
        import shutil

        shutil.copyfile(starter_model, target)
    library.add_folder(folder)
    return "second-model"
