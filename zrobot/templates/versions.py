"""Template versions: parsing and ordering of "1.2.3"-style version strings.

A version is dot-separated release numbers, an optional `-pre.release` and
optional `+build` metadata. Release numbers compare as numbers, missing ones
count as zero, a pre-release sorts before its release, build metadata is
kept for display and ignored for order and equality.
"""

from __future__ import annotations

import dataclasses
import functools
import re

_IDENT = r"[0-9A-Za-z-]+"
_PATTERN = re.compile(
    rf"(?P<release>[0-9]+(?:\.[0-9]+)*)"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?"
)
_MAX_LENGTH = 128
_EXPECTED = (
    "a version is numbers separated by dots, optionally followed by "
    "-prerelease and +build, e.g. 1.2.0, 2, 1.0.0-rc1, 1.0.0+build.5"
)

# A pre-release identifier as a sort key: numbers before words, numbers by value.
_PreKey = tuple[tuple[int, int, str], ...]


@functools.total_ordering
@dataclasses.dataclass(frozen=True, eq=False)
class Version:
    """A parsed version; compare and hash instances, print the original text.

    Build with `Version.parse`. Equal versions hash equally, so "1.0" and
    "1.0.0" are the same dict key. Pure value object: never blocks.
    """

    text: str
    release: tuple[int, ...]
    pre: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse text such as "1.2.3", "2", "1.0.0-rc1" or "1.0.0+build".

        Raises ValueError saying what a valid version looks like when text
        is not a string, is empty, too long or malformed.
        """
        if not isinstance(text, str):
            raise ValueError(f"version must be a string, got {text!r}; {_EXPECTED}")
        match = _PATTERN.fullmatch(text) if len(text) <= _MAX_LENGTH else None
        if match is None:
            raise ValueError(f"invalid version {text!r}: {_EXPECTED}")
        pre = match.group("pre")
        return cls(
            text=text,
            release=tuple(int(part) for part in match.group("release").split(".")),
            pre=tuple(pre.split(".")) if pre else (),
            build=match.group("build") or "",
        )

    @property
    def is_prerelease(self) -> bool:
        """True when the version has a -pre part (e.g. 1.0.0-rc1)."""
        return bool(self.pre)

    def _key(self) -> tuple[tuple[int, ...], int, _PreKey]:
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        pre = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.pre
        )
        return tuple(release), 0 if pre else 1, pre

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text
