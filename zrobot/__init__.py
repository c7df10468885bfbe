"""zrobot: a mesh of robots that run services from git templates over gRPC.

The public API is listed in `__all__`; everything else is machinery.
Importing zrobot does not patch anything: the `zrobot` command (and the
test bootstrap) set up gevent and gRPC first, see zrobot._gevent.
"""

import logging

__version__ = "0.1.0"

from zrobot.errors import Error  # noqa: E402
from zrobot.states import TaskState  # noqa: E402
from zrobot.template import Template, action  # noqa: E402

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["Client", "Error", "TaskState", "Template", "__version__", "action"]


def __getattr__(name: str) -> object:
    # The client pulls in grpc; load it only when asked for.
    if name == "Client":
        from zrobot.client import Client

        return Client
    raise AttributeError(f"module 'zrobot' has no attribute {name!r}")
