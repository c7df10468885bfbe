"""`make demo`: two robots, a consumer on one, producers on the other.

Robot "b" runs a file_hasher and a word_counter; robot "a" runs a
folder_report whose summarize action fans work out to b's producers over
gRPC and combines what they push back. The files it reports on are real:
this project's own Python sources. Both robots are real processes on
loopback ports and are stopped at the end.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

from zrobot._gevent import bootstrap

bootstrap()

from zrobot.testing import RobotProcess  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = ROOT / "zrobot"


def publish_templates(folder: pathlib.Path) -> str:
    """Commit examples/templates into a git repo under folder; return its path."""
    repo = folder / "git" / "examples" / "templates"
    tool = ROOT / "tools" / "example_repo.py"
    subprocess.run(
        [sys.executable, str(tool), str(repo)], check=True, stdout=subprocess.DEVNULL
    )
    return str(repo)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="zrobot-demo-") as tmp:
        folder = pathlib.Path(tmp)
        repo = publish_templates(folder)
        b = RobotProcess(folder / "robot-b", repos=[repo])
        print(f"robot b serving on {b.start()}")
        a = RobotProcess(folder / "robot-a", repos=[repo], peers={"b": b.address})
        print(f"robot a serving on {a.start()} (peer b = {b.address})")
        try:
            return run(a, b)
        finally:
            a.stop()
            b.stop()
            print("both robots stopped")


def run(a: RobotProcess, b: RobotProcess) -> int:
    root = {"root": str(FILES)}
    with b.client() as client_b, a.client() as client_a:
        client_b.services.create("file_hasher", "hasher", root)
        client_b.services.create("word_counter", "counter", root)
        report = client_a.services.create(
            "folder_report",
            "report",
            {**root, "hasher": "hasher", "counter": "counter", "robot": "b"},
        )
        print("on b: hasher, counter; on a: report -> b")
        task = report.schedule_action("summarize", {"pattern": "*.py"})
        summary = task.wait(120)
    for item in summary["files"]:
        print(
            f"  {item['path']:<20} {item['words']:>6} words {item['lines']:>5} lines"
            f"  sha256 {item['sha256'][:12]}"
        )
    totals = summary["totals"]
    print(
        f"{totals['files']} files, {totals['words']} words, {totals['lines']} lines, "
        f"{totals['size']} bytes; combined sha256 {summary['combined_sha256'][:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
