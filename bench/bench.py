"""zrobot benchmarks, printed as ratios to baselines measured in the same run.

Run with `make bench` (under gevent, as the robot runs). Figures:

1. local round trip: a consumer service schedules a task on a producer
   service in the same robot and waits for the result; baseline: a raw
   gevent queue round trip between two greenlets (put a request with an
   AsyncResult, the other greenlet sets it).
2. remote producer call: a consumer on robot A schedules on a producer on
   robot B (two processes) and gets the result pushed back over WaitTask;
   baseline: one raw grpcio unary call to a bare server process, with the
   same gevent setup on the calling side.
3. durable vs in-memory: local round trips with the SQLite journal, as a
   ratio to the same with an in-memory store.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from zrobot._gevent import bootstrap  # noqa: E402

bootstrap()

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.queue  # noqa: E402
import grpc  # noqa: E402

from zrobot.robot import Robot, RobotConfig  # noqa: E402
from zrobot.testing import RobotProcess, commit_files  # noqa: E402

LOCAL_N = int(os.environ.get("BENCH_LOCAL_N", "3000"))
REMOTE_N = int(os.environ.get("BENCH_REMOTE_N", "500"))
RAW_N = int(os.environ.get("BENCH_RAW_N", "50000"))

BENCH_TEMPLATE = '''
import time

from zrobot import Template


class Pinger(Template):
    version = "1.0.0"

    def ping(self, n: int = 0) -> int:
        return n

    def loop(self, service: str, n: int, robot: str = None) -> list:
        """n sequential round trips to service.ping; per-call seconds."""
        proxy = self.api.services.get(service, robot=robot)
        times = []
        for i in range(n):
            start = time.perf_counter()
            proxy.schedule_action("ping", {"n": i}).wait(60)
            times.append(time.perf_counter() - start)
        return times
'''

RAW_SERVER = """
import sys
from zrobot._gevent import bootstrap
bootstrap()
from concurrent import futures
import grpc

def echo(request, context):
    return request

handler = grpc.method_handlers_generic_handler(
    "bench.Raw", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


def raw_queue_rate(n: int) -> float:
    """Round trips/s of request+AsyncResult through a gevent queue."""
    queue: gevent.queue.Queue = gevent.queue.Queue()

    def serve() -> None:
        while (item := queue.get()) is not None:
            item[1].set(item[0])

    server = gevent.spawn(serve)
    start = time.perf_counter()
    for i in range(n):
        reply = gevent.event.AsyncResult()
        queue.put((i, reply))
        reply.get()
    elapsed = time.perf_counter() - start
    queue.put(None)
    server.join()
    return n / elapsed


def local_rate(repo: str, folder: pathlib.Path, store: str) -> float:
    """Round trips/s between two services of one in-process robot."""
    robot = Robot(
        RobotConfig(
            data_dir=folder, listen="127.0.0.1:0", template_repos=[repo], storage=store
        )
    )
    robot.start(serve=False)
    try:
        robot.create_service("pinger", "producer", {})
        consumer = robot.create_service("pinger", "consumer", {})
        consumer.schedule("loop", {"service": "producer", "n": 50}).wait(60)
        start = time.perf_counter()
        consumer.schedule("loop", {"service": "producer", "n": LOCAL_N}).wait(600)
        return LOCAL_N / (time.perf_counter() - start)
    finally:
        robot.stop(grace_s=0)


def remote_latencies(repo: str, folder: pathlib.Path) -> list[float]:
    """Per-call seconds of consumer(A) -> producer(B) across two processes."""
    b = RobotProcess(folder / "b", repos=[repo])
    b.start()
    a = RobotProcess(folder / "a", repos=[repo], peers={"b": b.address})
    a.start()
    try:
        with b.client() as client_b, a.client(timeout_s=600) as client_a:
            client_b.services.create("pinger", "producer")
            consumer = client_a.services.create("pinger", "consumer")
            args = {"service": "producer", "n": 50, "robot": "b"}
            consumer.schedule_action("loop", args).wait(120)
            args["n"] = REMOTE_N
            return consumer.schedule_action("loop", args).wait(600)
    finally:
        a.stop()
        b.stop()


def raw_grpc_latencies(n: int) -> list[float]:
    """Per-call seconds of a bare unary call to another gevent process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RAW_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        port = proc.stdout.readline().strip() if proc.stdout else ""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/bench.Raw/Echo")
            times = []
            for _ in range(n + 50):
                start = time.perf_counter()
                echo.future(b"ping", timeout=10).result()
                times.append(time.perf_counter() - start)
            return times[50:]
    finally:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="zrobot-bench-") as tmp:
        folder = pathlib.Path(tmp)
        repo = folder / "git" / "bench" / "templates"
        commit_files(repo, {"pinger.py": BENCH_TEMPLATE})
        raw = raw_queue_rate(RAW_N)
        durable = local_rate(str(repo), folder / "durable", "sqlite")
        memory = local_rate(str(repo), folder / "memory", "memory")
        raw_rpc = raw_grpc_latencies(REMOTE_N)
        remote = remote_latencies(str(repo), folder / "mesh")
    print(f"raw gevent queue round trip     {raw:12,.0f} /s   (baseline)")
    print(
        f"local task round trip, SQLite   {durable:12,.0f} /s   "
        f"ratio to raw queue {durable / raw:.4f} (1/{raw / durable:.0f})"
    )
    print(
        f"local task round trip, memory   {memory:12,.0f} /s   "
        f"ratio to raw queue {memory / raw:.4f} (1/{raw / memory:.0f})"
    )
    print(f"durable / in-memory             {durable / memory:12.3f}")
    for name, values in (
        ("raw grpc unary call", raw_rpc),
        ("remote producer call", remote),
    ):
        print(
            f"{name:<32}p50 {pct(values, 50) * 1e3:7.3f} ms  "
            f"p99 {pct(values, 99) * 1e3:7.3f} ms  "
            f"mean {statistics.fmean(values) * 1e3:7.3f} ms"
        )
    print(
        f"remote / raw grpc               p50 x{pct(remote, 50) / pct(raw_rpc, 50):.2f}"
        f"  p99 x{pct(remote, 99) / pct(raw_rpc, 99):.2f}"
    )


if __name__ == "__main__":
    main()
