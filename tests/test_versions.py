"""Template versions: what parses, what does not, and how versions order."""

import random

import pytest

from zrobot.templates import Version

ASCENDING = [
    "0.1",
    "0.9.0",
    "0.10.0",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc1",
    "1.0.0",
    "1.0.1",
    "1.2",
    "1.10",
    "2",
    "10.0.0",
]


@pytest.mark.parametrize(
    ("lower", "higher"), list(zip(ASCENDING, ASCENDING[1:], strict=False))
)
def test_each_version_sorts_before_the_next_one(lower: str, higher: str) -> None:
    assert Version.parse(lower) < Version.parse(higher)
    assert Version.parse(higher) > Version.parse(lower)


def test_sorting_a_shuffled_list_gives_the_ascending_order() -> None:
    shuffled = list(ASCENDING)
    random.Random(7).shuffle(shuffled)
    ordered = sorted(shuffled, key=Version.parse)
    assert ordered == ASCENDING


def test_minor_versions_compare_as_numbers_not_text() -> None:
    assert Version.parse("0.10.0") > Version.parse("0.9.0")
    assert max(map(Version.parse, ["0.9.0", "0.10.0", "0.2.0"])).text == "0.10.0"


@pytest.mark.parametrize(("left", "right"), [("1.0", "1.0.0"), ("2", "2.0.0.0")])
def test_missing_parts_count_as_zero(left: str, right: str) -> None:
    assert Version.parse(left) == Version.parse(right)
    assert hash(Version.parse(left)) == hash(Version.parse(right))


def test_build_metadata_is_ignored_for_order_but_kept_as_text() -> None:
    plain, built = Version.parse("1.0.0"), Version.parse("1.0.0+build.7")
    assert plain == built
    assert not plain < built and not built < plain
    assert built.build == "build.7"
    assert str(built) == "1.0.0+build.7"


def test_a_prerelease_sorts_before_its_release_and_after_the_previous_one() -> None:
    rc = Version.parse("1.0.0-rc1")
    assert Version.parse("0.9.9") < rc < Version.parse("1.0.0")
    assert rc.is_prerelease and not Version.parse("1.0.0").is_prerelease


def test_parse_splits_release_prerelease_and_build() -> None:
    version = Version.parse("1.2.3-rc.1+sha.5114f85")
    assert version.release == (1, 2, 3)
    assert version.pre == ("rc", "1")
    assert version.build == "sha.5114f85"


def test_versions_are_frozen() -> None:
    version = Version.parse("1.0.0")
    with pytest.raises(AttributeError):
        version.text = "2.0.0"  # type: ignore[misc]


def test_a_version_never_equals_a_plain_string() -> None:
    assert Version.parse("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = Version.parse("1.0.0") < "2.0.0"  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        " 1.0.0",
        "1.0.0\n",
        "v1.0.0",
        "1.",
        ".1",
        "1..0",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-rc..1",
        "1.0.0-rc_1",
        "1.x",
        "latest",
        "1.0/2",
        "١.٢",
        "1" * 200,
    ],
)
def test_malformed_versions_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 1\.2\.0"):
        Version.parse(text)


@pytest.mark.parametrize("value", [None, 1.0, 2])
def test_a_version_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        Version.parse(value)  # type: ignore[arg-type]
