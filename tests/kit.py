"""Templates and helpers the tests share: a real template repo in source form.

`KIT` is the source of a template module the tests commit into a git repo
in a temp dir. Its `gate` action blocks its worker until the test opens a
Gate (a unix socket the action connects to), which works across processes
and without sleeps.
"""

from __future__ import annotations

import pathlib
import socket
import uuid

import gevent

KIT = '''
import socket

import gevent

from zrobot import Template, action


class Recorder(Template):
    """Records what it was asked to do; the tests' workhorse."""

    version = "1.0.0"

    def echo(self, value=None):
        return value

    def make_bad(self, kind: str, where: str):
        """Build a value the wire cannot carry; return it, store it or raise it."""
        deep = "bottom"
        for _ in range(60 if kind == "deep60" else 40):
            deep = [deep]
        value = {
            "surrogate": "\\ud800",
            "surrogate_key": {"\\udcff": 1},
            "deep": deep,
            "deep60": deep,
            "huge": "x" * (5 * 1024 * 1024),
            "bigint": 10**400,
        }[kind]
        if where == "state":
            self.state["bad"] = value
        elif where == "error":
            raise ValueError(value)
        return value

    def carry(self, value=None, pad: str = ""):
        """Return value; pad only makes the task's arguments large."""
        return value

    def add(self, a: int, b: int) -> int:
        return a + b

    def record(self, label: str, pause_s: float = 0.0) -> int:
        """Append label to state["seen"], after pausing pause_s seconds."""
        if pause_s:
            gevent.sleep(pause_s)
        seen = self.state.setdefault("seen", [])
        seen.append(label)
        return len(seen)

    def gate(self, path: str) -> str:
        """Block until the test's Gate at path sends a byte."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            return sock.recv(16).decode()

    def raise_base(self, kind: str) -> None:
        raise eval(kind)  # SystemExit(3), KeyboardInterrupt(), ...

    def remember(self, key: str, value=None) -> None:
        self.state[key] = value

    def sleep(self, seconds: float) -> float:
        gevent.sleep(seconds)
        return seconds

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def not_json(self) -> object:
        return {"when": object()}

    @action(repeat_safe=False)
    def once(self, label: str) -> str:
        self.state.setdefault("once", []).append(label)
        return label

    @action(repeat_safe=False)
    def once_gated(self, path: str) -> str:
        """Like gate, but must never run twice."""
        return self.gate(path)

    def call(self, service: str, action: str, args: dict = None,
             robot: str = None, timeout_s: float = 30.0):
        """Call a producer and return its result."""
        proxy = self.api.services.get(service, robot=robot)
        return proxy.schedule_action(action, args or {}).wait(timeout_s)

    def delegate(self, name: str, value=None, robot: str = None) -> list:
        """find_or_create a recorder called name, echo value on it, twice."""
        results = []
        for _ in range(2):
            proxy = self.api.services.find_or_create("recorder", name, {}, robot=robot)
            results.append(proxy.schedule_action("echo", {"value": value}).wait(30))
        return results

    def fan_out(self, service: str, values: list, robot: str = None) -> list:
        """Schedule echo for every value on a producer first, then wait on all."""
        proxy = self.api.services.get(service, robot=robot)
        tasks = [proxy.schedule_action("echo", {"value": v}) for v in values]
        return [task.wait(30) for task in tasks]

    def _private(self):
        return "never an action"

'''


BROKEN = """
from zrobot import Template


class BrokenInit(Template):
    version = "1.0.0"

    def __init__(self, *args, **kwargs):
        raise RuntimeError("cannot start")


class ValidateKeyError(Template):
    version = "1.0.0"

    def validate(self):
        self.data["root"]


class ValidateExit(Template):
    version = "1.0.0"

    def validate(self):
        raise SystemExit(2)
"""


class Gate:
    """A unix socket an action connects to and blocks on until `open()`.

    `wait_arrivals(n)` blocks until n actions are waiting at the gate, so a
    test knows the worker is busy without sleeping.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        self.path = str(folder / f"gate-{uuid.uuid4().hex[:8]}.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._waiting: list[socket.socket] = []

    def wait_arrivals(self, count: int = 1, timeout_s: float = 30.0) -> None:
        """Block until count actions are connected to the gate."""
        with gevent.Timeout(timeout_s):
            while len(self._waiting) < count:
                conn, _ = self._server.accept()
                self._waiting.append(conn)

    def open(self, reply: str = "open") -> None:
        """Release every waiting action; each returns reply."""
        for conn in self._waiting:
            try:
                conn.sendall(reply.encode())
            except OSError:
                pass  # that action was cancelled and hung up
            conn.close()
        self._waiting.clear()

    def close(self) -> None:
        """Release everything and stop listening."""
        self.open()
        self._server.close()
