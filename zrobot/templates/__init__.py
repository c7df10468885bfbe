"""The template store: template repos, their checkouts and the templates in them.

`TemplateStore` is what a robot uses; `RepoUrl`, `checkout` and `Version`
are its parts, public for the CLI and for tests.
"""

from zrobot.templates.repo import RepoUrl, checkout, checkout_path
from zrobot.templates.store import LoadError, RepoLoad, TemplateInfo, TemplateStore
from zrobot.templates.versions import Version

__all__ = [
    "LoadError",
    "RepoLoad",
    "RepoUrl",
    "TemplateInfo",
    "TemplateStore",
    "Version",
    "checkout",
    "checkout_path",
]
