"""The robot: one process's templates, services, store and gRPC server.

`Robot.start()` and `Robot.stop()` are the only places that bring the
parts up and down, in the order their comments give. All methods run in
the calling greenlet; the service workers and the server's handler
greenlets are owned by the robot and stopped by `stop()`.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event

from zrobot import __version__, errors
from zrobot.api import Api
from zrobot.service import Service
from zrobot.states import TaskState
from zrobot.storage import DEFAULT_HISTORY_LIMIT, ServiceRecord, Storage, TaskRecord
from zrobot.storage.lock import DataDirLock
from zrobot.storage.memory import MemoryStorage
from zrobot.storage.sqlite import STORE_NAME, SqliteStorage
from zrobot.task import error_to_dict, now
from zrobot.templates import RepoLoad, TemplateInfo, TemplateStore
from zrobot.values import ensure_json

if TYPE_CHECKING:
    from zrobot.client import Client
    from zrobot.server import Server

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = (
    "1 to 128 characters: letters, digits, '.', '_' or '-', starting with a "
    "letter or digit (no path separators, spaces or control characters)"
)


@dataclasses.dataclass
class RobotConfig:
    """How to run a robot; the CLI fills it from its flags."""

    data_dir: pathlib.Path
    listen: str = "127.0.0.1:6600"
    name: str = ""
    peers: dict[str, str] = dataclasses.field(default_factory=dict)
    template_repos: list[str] = dataclasses.field(default_factory=list)
    history_limit: int = DEFAULT_HISTORY_LIMIT
    grace_s: float = 5.0
    storage: str = "sqlite"


@dataclasses.dataclass(frozen=True)
class RobotInfo:
    """What GetRobotInfo reports."""

    robot_id: str
    name: str
    version: str
    address: str
    uptime_s: float
    template_count: int
    service_count: int
    pending_task_count: int


def validate_name(name: str, what: str = "service") -> None:
    """Raise InvalidName unless name follows NAME_RULE."""
    if not NAME_PATTERN.fullmatch(name):
        raise errors.InvalidName(
            f"invalid {what} name {name[:140]!r}: use {NAME_RULE}",
            violations=[("name", NAME_RULE)],
        )


class Robot:
    """One robot process's state. See the module docstring."""

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        self.address = config.listen
        self._lock = DataDirLock(config.data_dir)
        self._storage: Storage | None = None
        self.templates = TemplateStore(config.data_dir / "repos")
        self._services: dict[str, Service] = {}
        self._dormant: dict[str, ServiceRecord] = {}  # stored, template missing
        self._peers: dict[str, Client] = {}
        self._server: Server | None = None
        self._started = 0.0
        self._stopped = gevent.event.Event()
        self.robot_id = ""

    @property
    def storage(self) -> Storage:
        """The open store; only valid between start() and stop()."""
        if self._storage is None:
            raise errors.ServiceStopped("the robot is not running")
        return self._storage

    def start(self, serve: bool = True) -> None:
        """Bring the robot up; blocks until it serves. Raises StorageError
        subclasses and DataDirInUse before anything listens."""
        from zrobot.server import Server

        # The lock first: a second robot on this data dir must touch nothing.
        try:
            self.config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.StorageUnwritable(
                f"cannot use data dir {self.config.data_dir}: {exc.strerror}"
            ) from exc
        self._lock.acquire()
        try:
            # Then the store, so templates and services come back as they were.
            self._storage = self._open_storage()
            self.robot_id = self._storage.robot_id()
            # Repos before services: a service needs its template class.
            self._load_repos()
            self._recover_services()
            # Serve last, so no request sees a half-loaded robot.
            if serve:
                self._server = Server(self, self.config.listen)
                self.address = self._server.start()
        except BaseException:
            self._close_storage()
            self._lock.release()
            raise
        self._started = time.monotonic()
        log.info("robot %s serving on %s", self.robot_id, self.address)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop serving, stop every service, close the store. Blocks up to
        grace_s for in-flight calls. Safe to call twice."""
        if self._stopped.is_set():
            return
        grace = self.config.grace_s if grace_s is None else grace_s
        # Health goes NOT_SERVING and open WaitTask streams end first, so
        # peers reconnect elsewhere instead of waiting out the grace period.
        for service in self._services.values():
            service.close_watchers()
        if self._server is not None:
            self._server.stop(grace)
        # Then the workers: a running task stays RUNNING in the journal.
        for service in self._services.values():
            service.stop()
        for client in self._peers.values():
            client.close()
        self._close_storage()
        self._lock.release()
        self._stopped.set()
        log.info("robot %s stopped", self.robot_id)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stop() has finished; False if timeout_s passed first."""
        return self._stopped.wait(timeout_s)

    def info(self) -> RobotInfo:
        """Return identity, version, uptime and counts. Does not block."""
        return RobotInfo(
            robot_id=self.robot_id,
            name=self.config.name,
            version=__version__,
            address=self.address,
            uptime_s=time.monotonic() - self._started if self._started else 0.0,
            template_count=len(self.templates.list()),
            service_count=len(self._services),
            pending_task_count=sum(s.pending for s in self._services.values()),
        )

    def add_template_repo(self, url: str, stale_ok: bool = False) -> RepoLoad:
        """Clone or pull a repo, load its templates and remember the URL.

        Blocks the calling greenlet for the git work. Raises InvalidRepoUrl,
        RepoCloneFailed, RepoRefNotFound.
        """
        loaded = self.templates.add_repo(url, stale_ok)
        self.storage.add_repo(url)
        if self._dormant and self._started:
            self._revive()
        for failure in loaded.errors:
            log.warning(
                "template module %s of %s failed: %s",
                failure.path,
                failure.repo,
                failure.error,
            )
        return loaded

    def create_service(
        self, template: str, name: str, data: dict[str, Any], request_id: str = ""
    ) -> Service:
        """Create, store and start a service; return it.

        A repeated request_id returns the service it first created. Raises
        InvalidName, TemplateNotFound, AmbiguousTemplate, InvalidData,
        ServiceExists.
        """
        validate_name(name)
        known = self.storage.service_by_request_id(request_id) if request_id else None
        if known is not None:
            return self._known_request(known, name, self.templates.get(template).uid)
        if name in self._services or name in self._dormant:
            raise errors.ServiceExists(
                f"a service named {name!r} already exists; pick another name "
                "or delete it first",
                metadata={"service": name},
            )
        info = self.templates.get(template)
        record = ServiceRecord(name, info.uid, dict(data), {}, now(), request_id)
        service = self._build(record, info, validate=True)
        self.storage.create_service(record)
        self._services[name] = service
        service.start()
        log.info("service %s created from %s", name, info.uid)
        return service

    def _known_request(self, known: ServiceRecord, name: str, uid: str) -> Service:
        """The service a repeated CreateService made, if it asked the same."""
        if (known.name, known.template_uid) != (name, uid):
            raise errors.InvalidArguments(
                f"request_id {known.request_id!r} was first used to create "
                f"{known.name!r} from {known.template_uid}; use a new request_id",
                violations=[("request_id", "already used for another request")],
            )
        return self.service(name)

    def service(self, name: str) -> Service:
        """Return a service by name or raise ServiceNotFound."""
        service = self._services.get(name)
        if service is None and name in self._dormant:
            uid = self._dormant[name].template_uid
            raise errors.ServiceStopped(
                f"service {name!r} exists but is not running: its template {uid} "
                "did not load; add its template repo again (zrobot template add)",
                metadata={"service": name},
            )
        if service is None:
            raise errors.ServiceNotFound(
                f"no service named {name!r} on robot {self.address}",
                metadata={"service": name},
            )
        return service

    def services(self) -> list[Service]:
        """Return every service, ordered by name."""
        # TODO(recovery): list dormant services too, with a state saying their
        # template is missing; that needs a state field on zrobot.v1.Service.
        return [self._services[name] for name in sorted(self._services)]

    def delete_service(self, name: str) -> None:
        """Stop a service, cancel its unfinished tasks, delete it and its history.

        A dormant service (template not loaded) is deleted from the store.
        """
        if self._dormant.pop(name, None) is None:
            service = self.service(name)
            service.stop(cancel_pending=True)
            del self._services[name]
        self.storage.delete_service(name)
        log.info("service %s deleted", name)

    def peer(self, name: str) -> Client:
        """Return the client of a peer robot; PeerNotFound if it is unknown."""
        from zrobot.client import Client

        address = self.config.peers.get(name)
        if address is None:
            known = ", ".join(sorted(self.config.peers)) or "none"
            raise errors.PeerNotFound(
                f"no peer robot named {name!r}; known peers: {known} "
                "(add one with --peer NAME=HOST:PORT)",
                metadata={"robot": name},
            )
        if name not in self._peers:
            self._peers[name] = Client(address)
        return self._peers[name]

    def _build(
        self, record: ServiceRecord, info: TemplateInfo, validate: bool = False
    ) -> Service:
        """Instantiate the template for a service; InvalidData if it refuses."""
        api = Api(self)
        try:
            instance = info.cls(record.name, record.data, record.state, api)
            if validate:
                instance.validate()
                record.data = dict(ensure_json(instance.data, "the service's data"))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - template code: report, don't crash
            raise errors.InvalidData(
                f"template {info.name} refused service {record.name!r}: "
                f"{type(exc).__name__}: {exc}",
                metadata={"service": record.name, "template": info.uid},
            ) from exc
        key = f"{self.robot_id}/{record.name}"
        service = Service(record, info, instance, self.storage, key)
        api.bind(service)
        return service

    def _load_repos(self) -> None:
        known = self.storage.list_repos()
        for url in [*known, *(u for u in self.config.template_repos if u not in known)]:
            try:
                self.add_template_repo(url, stale_ok=True)
            except errors.TemplateError as exc:
                # TODO(templates): retry repos that failed at start in the background
                log.error("template repo %s not loaded: %s", url, exc)

    def _recover_services(self) -> None:
        """Restart stored services, then requeue their unfinished tasks.

        A service whose template does not load stays dormant: stored and
        untouched, its tasks journaled, until a template repo brings the
        template back (see _revive).
        """
        for record in self.storage.list_services():
            self._dormant[record.name] = record
        self._revive()

    def _revive(self) -> None:
        """Start every dormant service whose template is loaded now."""
        started = []
        for name, record in sorted(self._dormant.items()):
            try:
                service = self._build(record, self.templates.get(record.template_uid))
            except errors.Error as exc:
                log.error("service %s not started: %s", name, exc)
                continue
            self._services[name] = service
            started.append(service)
        for service in started:
            del self._dormant[service.name]
        for task in self.storage.unfinished_tasks():
            owner = next((s for s in started if s.name == task.service), None)
            if owner is not None:
                self._requeue(owner, task)
        for service in started:
            service.start()

    def _requeue(self, service: Service, record: TaskRecord) -> None:
        # TODO(recovery): count interrupted runs per task and fail a task that
        # keeps taking the robot down (os._exit, a crash in C) instead of
        # re-running it on every start.
        spec = service.template.actions.get(record.action)
        if (
            record.state is TaskState.RUNNING
            and spec is not None
            and not spec.repeat_safe
        ):
            exc = errors.TaskInterrupted(
                f"the robot stopped while {record.action} was running and the "
                "action is not safe to repeat; check its effects and schedule it again"
            )
            record.state, record.error, record.end_time = (
                TaskState.ERROR,
                error_to_dict(exc),
                now(),
            )
            self.storage.finish_task(record)
            return
        record.state, record.start_time = TaskState.NEW, None
        service.enqueue(record)

    def _open_storage(self) -> Storage:
        limit = self.config.history_limit
        if self.config.storage == "memory":
            return MemoryStorage(limit)
        if self.config.storage == "sqlite":
            return SqliteStorage(self.config.data_dir / STORE_NAME, limit)
        raise errors.StorageError(
            f"unknown storage {self.config.storage!r}; use 'sqlite' or 'memory'"
        )

    def _close_storage(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None
