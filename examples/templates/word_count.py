"""The `word_counter` template: lines, words and frequent words of text files.

Self-contained on purpose: a robot imports each module of a template repo on
its own, so this module shares no helper with its siblings.
"""

from __future__ import annotations

import collections
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import gevent

from zrobot.template import Template

MAX_TOP = 1000
LINES_PER_YIELD = 10_000

# Letters and digits, with apostrophes (' or ’) allowed between them only,
# so "don't" is one word and the quotes of 'word' are not part of it.
WORD = re.compile(r"[^\W_]+(?:['’]+[^\W_]+)*")


class WordCounter(Template):
    """Count lines, words and characters of UTF-8 text files under `data["root"]`.

    Data: `root`, the directory every path is relative to; it must exist
    when the service is created. Paths that leave `root` are refused.

    A word is a run of letters, digits and apostrophes that starts and ends
    with a letter or digit. Files are read line by line and the service
    yields to the other services of its robot every 10 000 lines.

    State: `files_counted`, how many files this service's actions have read.
    """

    version = "1.0.0"

    def validate(self) -> None:
        """Refuse a `root` that is not an existing directory."""
        _check_root(self.data.get("root"))

    def count_file(self, path: str) -> dict[str, Any]:
        """Count the lines, words and characters of one text file.

        Args: `path`, the file relative to root.

        Returns `{"path": relative path, "lines": n, "words": n,
        "chars": n}`; a last line without a newline still counts as a line.
        Raises FileNotFoundError for a missing file, ValueError for a path
        outside root or a file that is not UTF-8 text.
        """
        root = _root(self.data)
        target = _file_under(root, path)
        lines = words = chars = 0
        for line in _read_lines(target, path):
            lines += 1
            chars += len(line)
            words += sum(1 for _ in WORD.finditer(line))
        self._count_one()
        rel = target.relative_to(root).as_posix()
        return {"path": rel, "lines": lines, "words": words, "chars": chars}

    def top_words(self, path: str, top: int = 10) -> list[list[Any]]:
        """Return the most frequent words of one text file.

        Args: `path`, the file relative to root; `top`, how many words to
        return, 1 to 1000.

        Returns `[[word, count], ...]`, words case-folded, most frequent
        first, ties in alphabetical order. Raises ValueError for a bad
        `top`, a path outside root or a file that is not UTF-8 text,
        FileNotFoundError for a missing file.
        """
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise ValueError(f"top must be an integer from 1 to {MAX_TOP}, got {top!r}")
        target = _file_under(_root(self.data), path)
        counts: collections.Counter[str] = collections.Counter()
        for line in _read_lines(target, path):
            counts.update(m.group().casefold() for m in WORD.finditer(line))
        self._count_one()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [[word, count] for word, count in ranked[:top]]

    def _count_one(self) -> None:
        self.state["files_counted"] = self.state.get("files_counted", 0) + 1


def _check_root(root: Any) -> None:
    if not isinstance(root, str) or not root:
        raise TypeError("data 'root' must be a non-empty string (a directory)")
    if not pathlib.Path(root).is_dir():
        raise ValueError(f"data 'root' {root!r} is not an existing directory")


def _root(data: dict[str, Any]) -> pathlib.Path:
    return pathlib.Path(data["root"]).resolve()


def _file_under(root: pathlib.Path, path: str) -> pathlib.Path:
    """Return the resolved file `path` names under root, or raise."""
    if not path or ".." in pathlib.PurePath(path).parts:
        raise ValueError(f"path {path!r} must name a file inside root, without '..'")
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"path {path!r} leads outside root {str(root)!r}")
    if not target.exists():
        raise FileNotFoundError(f"no file {path!r} under root {str(root)!r}")
    if not target.is_file():
        raise ValueError(f"path {path!r} is not a regular file")
    return target


def _read_lines(target: pathlib.Path, path: str) -> Iterator[str]:
    """Yield the lines of a UTF-8 file, line ends kept; ValueError if not UTF-8."""
    try:
        with target.open(encoding="utf-8", newline="") as stream:
            for number, line in enumerate(stream, start=1):
                yield line
                if number % LINES_PER_YIELD == 0:
                    gevent.sleep(0)  # a cooperative yield: other services run
    except UnicodeDecodeError as err:
        raise ValueError(f"file {path!r} is not UTF-8 text: {err.reason}") from err
