"""A service: one template instance, its task list and its worker greenlet.

The worker is the only greenlet that runs the service's actions, one task
at a time, highest priority first and FIFO within a priority. Each action
runs in a child greenlet the worker joins, so a cancel or a deadline can
stop that action without touching the worker. Every state change is
journaled before anyone is told about it.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gevent
import gevent.queue

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import ServiceRecord, Storage, TaskRecord
from zrobot.task import Task, error_to_dict, now
from zrobot.template import Template, resolve_action
from zrobot.values import ensure_json, json_problem

if TYPE_CHECKING:
    from zrobot.templates import TemplateInfo

log = logging.getLogger(__name__)

_QUEUE_ORDER = itertools.count()


class Service:
    """A running service. Owned by the robot, which starts and stops it."""

    def __init__(
        self,
        record: ServiceRecord,
        template: TemplateInfo,
        instance: Template,
        storage: Storage,
        key: str,
    ) -> None:
        self.record = record
        self.template = template
        self.instance = instance
        self.key = key
        self._storage = storage
        self._queue: gevent.queue.PriorityQueue = gevent.queue.PriorityQueue()
        self._live: dict[str, Task] = {}
        self._worker: gevent.Greenlet | None = None
        self._action: gevent.Greenlet | None = None
        self.current: Task | None = None

    @property
    def name(self) -> str:
        """The service's name, unique within its robot."""
        return self.record.name

    @property
    def pending(self) -> int:
        """How many tasks are waiting or running."""
        return len(self._live)

    def start(self) -> None:
        """Spawn the worker greenlet. Does not block."""
        self._worker = gevent.spawn(self._work)
        self._worker.name = f"service:{self.name}"

    def stop(self, cancel_pending: bool = False) -> None:
        """Kill the worker and its running action; block until both are gone.

        A task that was running stays RUNNING in the journal, so a restart
        runs it again (or fails it, if its action is not repeat-safe). With
        cancel_pending, every unfinished task ends CANCELLED first (used
        when the service is deleted).
        """
        if self._worker is not None:
            self._worker.kill(block=True)
        for task in list(self._live.values()):
            if cancel_pending:
                task.transition(TaskState.CANCELLED, end_time=now())
            task.close_watchers()
        self._live.clear()

    def close_watchers(self) -> None:
        """End every open watch of this service's tasks (robot stopping)."""
        for task in self._live.values():
            task.close_watchers()

    def schedule(
        self,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        request_id: str = "",
        deadline: float | None = None,
        call_chain: Sequence[str] = (),
    ) -> Task:
        """Validate, journal and queue a task; return it at once.

        Raises InvalidAction or InvalidArguments (nothing queued), CallCycle
        when this service is already waiting further up the chain. A
        repeated request_id returns the task it first created.
        """
        spec = resolve_action(self.template.cls, action, self.template.actions)
        checked = spec.validate(args or {})
        problem = json_problem(checked)
        if problem:
            raise errors.InvalidArguments(
                f"arguments of {action} are not a JSON value zrobot can carry: "
                f"{problem}",
                violations=[("args", problem)],
            )
        if request_id:
            known = self._storage.task_by_request_id(self.name, request_id)
            if known is not None:
                _same_request(known, action, checked, priority)
                return self._live.get(known.id) or Task(known)
        if self.key in call_chain:
            raise errors.CallCycle(
                f"call cycle: {' -> '.join([*call_chain, self.key])} would wait "
                f"on {self.key}, which is already waiting on this call",
                metadata={"service": self.name},
            )
        record = TaskRecord(
            id=uuid.uuid4().hex,
            service=self.name,
            action=action,
            args=checked,
            priority=priority,
            state=TaskState.NEW,
            create_time=now(),
            deadline=deadline,
            call_chain=list(call_chain),
            request_id=request_id,
        )
        self._storage.add_task(record)
        return self.enqueue(record)

    def enqueue(self, record: TaskRecord) -> Task:
        """Put an already journaled task on the task list (also recovery)."""
        task = Task(record)
        self._live[task.id] = task
        self._queue.put((-record.priority, record.seq, next(_QUEUE_ORDER), task))
        return task

    def task(self, task_id: str) -> Task:
        """Return a live task, or one rebuilt from history; TaskNotFound if none."""
        task = self._live.get(task_id)
        if task is not None:
            return task
        record = self._storage.get_task(self.name, task_id)
        if record is None:
            raise errors.TaskNotFound(
                f"service {self.name!r} has no task {task_id!r}",
                metadata={"service": self.name, "task_id": task_id},
            )
        return Task(record)

    def cancel(self, task_id: str) -> Task:
        """Cancel a task: at once if it waits, by stopping its action if it runs.

        A task that already ended is returned unchanged.
        """
        task = self.task(task_id)
        if task.state is TaskState.NEW:
            self._finish(task, TaskState.CANCELLED)
        elif task is self.current and self._action is not None:
            self._action.kill(block=False)
        return task

    def _work(self) -> None:
        """Worker loop: take the next task, run it, journal the outcome."""
        while True:
            task = self._queue.get()[-1]
            if task.state is not TaskState.NEW:
                continue
            try:
                self._run(task)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any task
                # Typically the journal refused a write: the task cannot be
                # recorded, so end it in memory and keep serving the next one.
                log.exception("service %s: task %s not journaled", self.name, task.id)
                self._live.pop(task.id, None)
                task.transition(
                    TaskState.ERROR, error=error_to_dict(exc), end_time=now()
                )

    def _run(self, task: Task) -> None:
        record = task.record
        if record.deadline is not None and record.deadline <= now():
            self._fail(task, errors.DeadlineExceeded("deadline passed before start"))
            return
        self.current = task
        record.start_time = now()
        # TODO(storage): skip this write for repeat-safe actions (a crash re-runs
        # NEW and RUNNING alike); it is one of three transactions per task.
        self._storage.start_task(task.id, record.start_time)
        task.transition(TaskState.RUNNING)
        try:
            result = self._call(task)
        except errors.TaskCancelled:
            self._finish(task, TaskState.CANCELLED)
        except Exception as exc:  # noqa: BLE001 - any action error fails the task only
            log.info("task %s of service %s failed: %r", task.id, self.name, exc)
            self._fail(task, exc)
        else:
            self._finish(task, TaskState.OK, result=result)
        finally:
            self.current = None

    def _call(self, task: Task) -> Any:
        """Run the action in a child greenlet bounded by the task's deadline."""
        record = task.record
        method = getattr(self.instance, record.action)
        self._action = action = gevent.spawn(_outcome_of, method, record.args)
        timeout = None if record.deadline is None else max(0.0, record.deadline - now())
        try:
            result = action.get(timeout=timeout)
        except gevent.Timeout:
            action.kill(block=True)
            raise errors.DeadlineExceeded(
                f"action {record.action} did not finish before the task's deadline"
            ) from None
        except gevent.GreenletExit:
            # The worker itself is being killed: its action goes with it.
            action.kill(block=True)
            raise
        finally:
            self._action = None
        if isinstance(result, gevent.GreenletExit):
            # Only cancel() kills an action without killing the worker too.
            raise errors.TaskCancelled(f"task {task.id} was cancelled while running")
        returned, value = result
        if not returned:
            raise value
        result = value
        self._check_state(record.action)
        return ensure_json(result, f"the result of action {record.action}")

    def _check_state(self, action: str) -> None:
        """Refuse data/state an action left non-JSON; restore the last saved."""
        try:
            ensure_json(self.instance.data, f"self.data after action {action}")
            ensure_json(self.instance.state, f"self.state after action {action}")
        except TypeError:
            self.instance.data = dict(self.record.data)
            self.instance.state = dict(self.record.state)
            raise

    def _fail(self, task: Task, exc: BaseException) -> None:
        self._finish(task, TaskState.ERROR, error=error_to_dict(exc))

    def _finish(self, task: Task, state: TaskState, **fields: Any) -> None:
        """Journal the end of a task with the service's data and state, then
        tell waiters: a crash in between leaves the task to re-run."""
        record = task.record
        ended = TaskRecord(
            **{**vars(record), **fields, "state": state, "end_time": now()}
        )
        data, reported = self.instance.data, self.instance.state
        self._storage.finish_task(ended, data, reported)
        self.record.data, self.record.state = dict(data), dict(reported)
        self._live.pop(task.id, None)
        task.transition(state, end_time=ended.end_time, **fields)


def _same_request(
    known: TaskRecord, action: str, args: dict[str, Any], priority: int
) -> None:
    """Raise InvalidArguments if a reused request id asks for something else."""
    if (known.action, known.args, known.priority) != (action, args, priority):
        raise errors.InvalidArguments(
            f"request_id {known.request_id!r} was first used for {known.action} "
            "with other arguments; use a new request_id for a new request",
            metadata={"task_id": known.id},
            violations=[("request_id", "already used for another request")],
        )


def _outcome_of(method: Any, args: dict[str, Any]) -> tuple[bool, Any]:
    """Run an action; return (True, result) or (False, exception).

    Runs in the action's own greenlet. Returning the exception instead of
    letting the greenlet die with it keeps gevent from printing every
    failed action to stderr; the worker re-raises it with its traceback.
    SystemExit or KeyboardInterrupt from an action fail only its task: an
    action must never stop the robot (and, journaled as running, stop it
    again on every restart).
    """
    try:
        return True, method(**args)
    except gevent.GreenletExit:
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the worker, not swallowed
        return False, exc
    except BaseException as exc:  # noqa: BLE001 - see the docstring
        stopped = RuntimeError(
            f"the action raised {type(exc).__name__}({exc}); actions may not "
            "stop the robot"
        )
        stopped.__cause__ = exc
        return False, stopped
