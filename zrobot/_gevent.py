"""The one place where gevent and gRPC are set up for a process.

Order matters and is the same for the CLI entry point and the test
bootstrap: patch the standard library first, then switch gRPC to its gevent
mode (without it the server never serves), then widen the hub's native
thread pool, since every blocking gRPC wait holds one of its threads and the
default ten starve incoming calls behind nine outgoing ones.
"""

from __future__ import annotations

import os

HUB_THREADS = 256


def bootstrap() -> None:
    """Patch, init gRPC's gevent support, widen the pool. Idempotent.

    Must run before any gRPC channel or server exists.
    """
    # A robot runs git in subprocesses while gRPC is busy; gRPC's fork
    # handlers can then abort the child between fork and exec. zrobot never
    # forks without exec, so the handlers are not needed.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()

    import gevent
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()
    gevent.get_hub().threadpool.maxsize = HUB_THREADS
