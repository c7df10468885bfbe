"""The template store: the templates a robot can turn into services.

`TemplateStore.add_repo` checks a repo out (see `zrobot.templates.repo`) and
imports its top-level modules and packages (not `_*`, `test*`, `setup.py`
or `conftest.py`). Every public `Template` subclass defined in one of them
(for a package: exposed by its `__init__`) is a template, known by its UID
`host/owner/repo/name/version`. A module that fails to import, or a class
with a bad version or name, is reported as a `LoadError`; the rest of the
repo still loads.

Each checkout at each commit is imported as its own package, named from a
hash of the checkout path and the commit, so two repos, or two refs of one
repo, never share a module, and a repo pulled to a new commit loads its new
code. Modules of a repo reach each other with relative imports
(`from . import helpers`); the repo is never put on `sys.path`.
"""

from __future__ import annotations

import builtins
import collections
import collections.abc
import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import pathlib
import re
import sys
import traceback
import types

import gevent
import gevent.lock

from zrobot.errors import AmbiguousTemplate, RepoCloneFailed, TemplateNotFound
from zrobot.template import ActionSpec, Template, actions_of, template_name_of
from zrobot.templates.repo import (
    RepoUrl,
    checkout,
    checkout_path,
    head_commit,
    remove_scratch_dirs,
)
from zrobot.templates.versions import Version

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "_zrobot_templates_"
MAX_LISTED = 20

# Files at the top of a repo that are tooling, not templates; importing
# setup.py would run an installer.
_SKIPPED_MODULES = frozenset({"setup", "conftest"})
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_MAX_ERROR = 300
# What a module raising at import must never hide: these stop or bound the
# greenlet running add_repo, they are not the module failing. Anything else
# (KeyboardInterrupt, SystemExit, ...) is that module's LoadError, so one bad
# module cannot stop the robot at every start.
_GREENLET_CONTROL = (gevent.GreenletExit, gevent.Timeout)
IMPORT_TIMEOUT_S = 30.0


class ImportTimedOut(Exception):
    """A template module did not finish importing within IMPORT_TIMEOUT_S."""

    def __str__(self) -> str:
        return f"import did not finish within {IMPORT_TIMEOUT_S} s"


@dataclasses.dataclass(frozen=True, eq=False)
class TemplateInfo:
    """One loaded template: its UID, where it came from and its actions.

    `repo` is the repo URL with its #ref, credentials hidden; `cls` is the
    class to instantiate for a service.
    """

    uid: str
    name: str
    version: str
    repo: str
    cls: type[Template]
    doc: str
    actions: dict[str, ActionSpec]


@dataclasses.dataclass(frozen=True)
class LoadError:
    """A module or class of a repo that did not load, and why (one line)."""

    repo: str
    path: str
    error: str


@dataclasses.dataclass
class RepoLoad:
    """What adding one repo produced: its templates and its load errors."""

    templates: list[TemplateInfo]
    errors: list[LoadError]


@dataclasses.dataclass
class _Checkout:
    """A loaded checkout: the package its modules live in and what it held."""

    repo_url: RepoUrl
    package: str
    templates: list[TemplateInfo]
    errors: list[LoadError]


class TemplateStore:
    """Template repos checked out under `repos_dir` and the templates in them.

    Methods run in the calling greenlet. `add_repo` blocks it while git runs
    and modules import; other greenlets can `get` and `list` meanwhile and
    see the previous templates until the new ones are all loaded. Adding
    the same repo and ref from two greenlets runs one add after the other.
    """

    def __init__(self, repos_dir: pathlib.Path | str) -> None:
        """Use repos_dir for checkouts; removes clones left by a killed process.

        Blocks briefly on disk I/O. Raises OSError if repos_dir is unusable.
        """
        self.repos_dir = pathlib.Path(repos_dir).absolute()
        self._checkouts: dict[pathlib.Path, _Checkout] = {}
        self._index: dict[str, TemplateInfo] = {}
        self._locks: collections.defaultdict[pathlib.Path, gevent.lock.Semaphore] = (
            collections.defaultdict(gevent.lock.Semaphore)
        )
        if self.repos_dir.is_dir():
            remove_scratch_dirs(self.repos_dir)

    def add_repo(self, url: str, stale_ok: bool = False) -> RepoLoad:
        """Check out url (clone or pull) and load its templates; return them.

        Replaces the templates a previous add of the same repo and ref
        loaded. Blocks the calling greenlet while git runs and modules
        import. Raises InvalidRepoUrl, RepoCloneFailed or RepoRefNotFound,
        and then keeps what was loaded before; module and class failures
        are not raised but returned in `RepoLoad.errors`. With stale_ok
        (a robot starting up), a pull that fails falls back to the checkout
        already on disk, with a warning, so a git server that is down for
        a moment does not stop every service.
        """
        repo_url = RepoUrl.parse(url)
        path = checkout_path(repo_url, self.repos_dir)
        with self._locks[path]:
            try:
                checkout(repo_url, self.repos_dir)
            except RepoCloneFailed as exc:
                if not (stale_ok and (path / ".git").is_dir()):
                    raise
                log.warning("repo %s: %s; loading the checkout on disk", repo_url, exc)
            loaded = _load_checkout(repo_url, path)
            previous = self._checkouts.pop(path, None)
            self._checkouts[path] = loaded
            self._index = _build_index(self._checkouts.values())
        if previous is not None and previous.package != loaded.package:
            _forget_package(previous.package)
        log.info(
            "repo %s: %d templates loaded, %d errors",
            repo_url,
            len(loaded.templates),
            len(loaded.errors),
        )
        return RepoLoad(list(loaded.templates), list(loaded.errors))

    def get(self, ref: str) -> TemplateInfo:
        """Find a template by UID, by UID without version, or by a suffix.

        A suffix is whole segments: `repo/name` or `name`. Without a version
        the highest version wins. Never blocks. Raises TemplateNotFound
        (the message lists known names) and AmbiguousTemplate when the
        matches come from more than one repo (the message lists them).
        """
        index = self._index
        segments = ref.split("/") if isinstance(ref, str) else [""]
        if "" in segments or len(segments) > 5:
            raise _not_found(ref, index)
        if len(segments) == 5:
            if ref not in index:
                raise _not_found(ref, index)
            return index[ref]
        matches = [
            info
            for info in index.values()
            if info.uid.split("/")[4 - len(segments) : 4] == segments
        ]
        if not matches:
            raise _not_found(ref, index)
        if len({info.uid.rsplit("/", 2)[0] for info in matches}) > 1:
            raise _ambiguous(ref, matches)
        return max(matches, key=lambda info: (Version.parse(info.version), info.uid))

    def list(self) -> builtins.list[TemplateInfo]:
        """Return every loaded template, sorted by UID. Never blocks."""
        return sorted(self._index.values(), key=lambda info: info.uid)

    def repos(self) -> builtins.list[str]:
        """Return the loaded repos as given to add_repo (url#ref), sorted.

        These are full URLs for storing and re-adding: they may hold
        credentials, so never log or show them. Never blocks.
        """
        return sorted(loaded.repo_url.text for loaded in self._checkouts.values())


def _build_index(
    checkouts: collections.abc.Iterable[_Checkout],
) -> dict[str, TemplateInfo]:
    """Map UID to template; for a UID in two checkouts the later-added wins."""
    index: dict[str, TemplateInfo] = {}
    for loaded in checkouts:
        for info in loaded.templates:
            if info.uid in index:
                log.warning(
                    "template %s of %s replaces the one of %s",
                    info.uid,
                    info.repo,
                    index[info.uid].repo,
                )
            index[info.uid] = info
    return index


def _not_found(ref: str, index: dict[str, TemplateInfo]) -> TemplateNotFound:
    names = sorted({info.name for info in index.values()})
    if not names:
        known = "no templates are loaded; add a template repo first"
    else:
        known = "known templates: " + _bounded(names)
    return TemplateNotFound(
        f"no template matches {ref!r}; {known}", metadata={"template": str(ref)}
    )


def _ambiguous(ref: str, matches: builtins.list[TemplateInfo]) -> AmbiguousTemplate:
    uids = sorted(info.uid for info in matches)
    return AmbiguousTemplate(
        f"template {ref!r} is in several repos; name one of: {_bounded(uids)}",
        metadata={"template": ref},
    )


def _bounded(items: builtins.list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f" (and {len(items) - MAX_LISTED} more)"
    return shown


def _load_checkout(repo_url: RepoUrl, path: pathlib.Path) -> _Checkout:
    """Import the checkout's modules under a fresh package; collect templates."""
    commit = head_commit(path)
    digest = hashlib.sha1(f"{path}@{commit}".encode(), usedforsecurity=False)
    package = PACKAGE_PREFIX + digest.hexdigest()[:16]
    _forget_package(package)  # the same commit added again imports afresh
    importlib.invalidate_caches()
    root = _root_package(package, path)
    loaded = _Checkout(repo_url, package, [], [])
    for entry in _module_entries(path):
        _load_entry(loaded, root, path, entry)
    log.debug("repo %s at %s imported as %s", repo_url, commit, package)
    return loaded


def _root_package(package: str, path: pathlib.Path) -> types.ModuleType:
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    spec.submodule_search_locations = [str(path)]
    root = importlib.util.module_from_spec(spec)
    sys.modules[package] = root
    return root


def _module_entries(path: pathlib.Path) -> builtins.list[pathlib.Path]:
    """Top-level modules and packages of a checkout, in name order."""
    entries = []
    for child in sorted(path.iterdir()):
        stem = child.stem if child.is_file() else child.name
        if stem.startswith(("_", ".", "test")) or stem in _SKIPPED_MODULES:
            continue
        is_module = child.is_file() and child.suffix == ".py"
        is_package = child.is_dir() and (child / "__init__.py").is_file()
        if (is_module or is_package) and stem.isidentifier():
            entries.append(child)
    return entries


def _load_entry(
    loaded: _Checkout, root: types.ModuleType, path: pathlib.Path, entry: pathlib.Path
) -> None:
    """Import one module or package and add its templates or its errors."""
    rel = entry.relative_to(path).as_posix() + (
        "/__init__.py" if entry.is_dir() else ""
    )
    repo = str(loaded.repo_url)
    try:
        module = _import(root, entry)
    except _GREENLET_CONTROL:
        raise
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: reported
        loaded.errors.append(LoadError(repo, rel, _describe(exc, path, entry)))
        return
    known = {info.uid for info in loaded.templates}
    for cls in _template_classes(module):
        try:
            info = _template_info(loaded.repo_url, cls)
            if info.uid in known:
                raise ValueError(f"UID {info.uid} is defined twice in the repo")
        except Exception as exc:  # noqa: BLE001 - a bad class is reported
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:_MAX_ERROR]
            loaded.errors.append(
                LoadError(repo, rel, f"class {cls.__name__}: {detail}")
            )
            continue
        known.add(info.uid)
        loaded.templates.append(info)


def _import(root: types.ModuleType, entry: pathlib.Path) -> types.ModuleType:
    name = f"{root.__name__}.{entry.stem if entry.is_file() else entry.name}"
    if entry.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, entry / "__init__.py", submodule_search_locations=[str(entry)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {entry.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # A module that waits at import (a sleep, a socket) would hang the
        # add, and with it the robot's exit; one that burns CPU cannot be
        # stopped this way.
        with gevent.Timeout(IMPORT_TIMEOUT_S, ImportTimedOut):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    setattr(root, name.rpartition(".")[2], module)
    return module


def _template_classes(module: types.ModuleType) -> builtins.list[type[Template]]:
    """Public Template subclasses defined in module (or, for a package, in it
    or its submodules), each once, in name order."""
    prefix = module.__name__
    found: dict[int, type[Template]] = {}
    for key, value in vars(module).items():
        if (
            isinstance(value, type)
            and issubclass(value, Template)
            and value is not Template
            and not key.startswith("_")
            and (
                value.__module__ == prefix or value.__module__.startswith(prefix + ".")
            )
        ):
            found[id(value)] = value
    return sorted(found.values(), key=lambda cls: cls.__qualname__)


def _template_info(repo_url: RepoUrl, cls: type[Template]) -> TemplateInfo:
    """Describe a template class; raises ValueError for a bad name or version."""
    name = template_name_of(cls)
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"template name {name!r} must be letters, digits, '_', '.' or '-'"
        )
    Version.parse(cls.version)
    own_doc = cls.__dict__.get("__doc__")
    return TemplateInfo(
        uid=f"{repo_url.slug}/{name}/{cls.version}",
        name=name,
        version=cls.version,
        repo=str(repo_url),
        cls=cls,
        doc=inspect.cleandoc(own_doc) if own_doc else "",
        actions=actions_of(cls),
    )


def _describe(exc: BaseException, root: pathlib.Path, entry: pathlib.Path) -> str:
    """One line: `Type: message (line N)`, or `(file:N)` for another repo file."""
    message = str(exc.msg if isinstance(exc, SyntaxError) else exc)
    text = type(exc).__name__ + (": " + message.splitlines()[0] if message else "")
    where = _where(exc, root)
    if where is not None:
        file, line = where
        own = file == entry or file == entry / "__init__.py"
        text += f" (line {line})" if own else f" ({file.relative_to(root)}:{line})"
    return text[:_MAX_ERROR]


def _where(exc: BaseException, root: pathlib.Path) -> tuple[pathlib.Path, int] | None:
    """The innermost place inside the checkout where exc was raised."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        places = [(exc.filename, exc.lineno)]
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        places = [(frame.filename, frame.lineno or 0) for frame in frames]
    for filename, line in reversed(places):
        file = pathlib.Path(filename)
        if file.is_relative_to(root):
            return file, line
    return None


def _forget_package(package: str) -> None:
    """Drop a checkout's modules from sys.modules (live services keep theirs)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
