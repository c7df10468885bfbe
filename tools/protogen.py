"""Generate zrobot.v1 Python code from protos/ (used by `make proto` and a test).

Usage: python tools/protogen.py [OUT_DIR]   (default: the repository root)

The output is deterministic, so a test can regenerate into a temp dir and
compare byte for byte with the committed files.
"""

from __future__ import annotations

import pathlib
import sys

import google.api
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = pathlib.Path("zrobot") / "v1"


def proto_files() -> list[str]:
    """Return the .proto paths relative to protos/, sorted for stable output."""
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def generate(out_dir: pathlib.Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto into out_dir."""
    googleapis = pathlib.Path(google.api.__path__[0]).parent.parent
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    (out_dir / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the message above")


def generated_files(root: pathlib.Path) -> dict[str, bytes]:
    """Map each generated file under root/zrobot/v1 to its content."""
    folder = root / PACKAGE_DIR
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    }


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
