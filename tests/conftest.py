"""Test bootstrap: the suite runs under gevent, as the robot does.

`make test` starts pytest through `python -m gevent.monkey`, so the standard
library is patched before pytest imports it; bootstrap() then brings up
gRPC's gevent mode. Shared fixtures live in zrobot.testing.
"""

from zrobot._gevent import bootstrap

bootstrap()

pytest_plugins = ["zrobot.testing"]

import pathlib  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.kit import KIT, Gate  # noqa: E402


@pytest.fixture
def kit_repo(git_repo: Callable[..., pathlib.Path]) -> str:
    """Path of a git repo holding the Recorder test template."""
    return str(git_repo("acme/kit", {"recorder.py": KIT}))


@pytest.fixture
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    """A Gate in a short temp path (unix socket paths are limited to 107 bytes)."""
    opened = Gate(tmp_path_factory.mktemp("g"))
    yield opened
    opened.close()
