"""Commands on `{root}/{ward}/{kiosk}/cmd/{name}`, each answered with a reply, never a crash.

Request: `{"id": <request id>, "args": {...}}`. Reply `{"id", "ok": true, "result"}` or
`{"id", "ok": false, "error": <sentence>, "code": <machine code>}` on the MQTT 5 response topic
(with its correlation data) when it lies under this kiosk's `reply` topic, else on
`{root}/{ward}/{kiosk}/reply`. The broker's ACL lets a kiosk publish only under its own topics,
so a response topic elsewhere could not be honoured anyway.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from agent.errors import KioskError
from agent.mqtt_client import Message, MqttClient
from agent.sync.topics import KioskTopics

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 8


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr | StrictInt | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Any], Awaitable[Any] | Any]


@dataclass(frozen=True)
class Command:
    name: str
    args: type[BaseModel]
    handler: Handler
    description: str


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(self, name: str, args: type[BaseModel], handler: Handler, description: str = "") -> None:
        if name in self._commands:
            raise ValueError(f"command {name!r} registered twice")
        self._commands[name] = Command(name, args, handler, description)

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def names(self) -> list[str]:
        return sorted(self._commands)


class CommandFailed(KioskError):
    code = "command_failed"


class Commands:
    def __init__(self, client: MqttClient, topics: KioskTopics, registry: CommandRegistry, max_bytes: int) -> None:
        self.client = client
        self.topics = topics
        self.registry = registry
        self.max_bytes = max_bytes
        self.handled = 0
        self.errors = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, message: Message) -> None:
        """The MQTT handler: runs on the loop; the work is a task so the network loop never waits."""
        if message.retain:
            return  # a stale retained command is not an order to act now
        if len(self._tasks) >= MAX_CONCURRENT:
            self._reply(message, None, error=("too many commands at once; try again", "busy"))
            return
        task = asyncio.get_running_loop().create_task(self._run(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, message: Message) -> None:
        name = self.topics.command_name(message.topic)
        request_id: str | int | None = None
        try:
            if len(message.payload) > self.max_bytes:
                raise CommandFailed(f"the command body is {len(message.payload)} bytes, over {self.max_bytes}",
                                    code="too_large")
            try:
                raw = json.loads(message.payload)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CommandFailed(f"the command body is not JSON: {exc}", code="bad_json") from exc
            if isinstance(raw, dict) and isinstance(raw.get("id"), str | int):
                request_id = raw["id"]
            request = _validate(Request, raw)
            request_id = request.id
            command = self.registry.get(name)
            if command is None:
                raise CommandFailed(f"unknown command {name!r}; known: {', '.join(self.registry.names())}",
                                    code="unknown_command")
            args = _validate(command.args, request.args)
            result = command.handler(args)
            if inspect.isawaitable(result):
                result = await result
            self.handled += 1
            self._reply(message, request_id, result=result)
        except KioskError as exc:
            self.errors += 1
            logger.info("command %s refused: %s", name, exc.message)
            self._reply(message, request_id, error=(exc.message, exc.code))
        except Exception as exc:  # a handler bug becomes an error reply, not a dead agent
            self.errors += 1
            logger.exception("command %s failed", name)
            self._reply(message, request_id, error=(f"internal error: {type(exc).__name__}", "internal"))

    def _reply(self, message: Message, request_id: str | int | None, result: Any = None,
               error: tuple[str, str] | None = None) -> None:
        body: dict[str, Any] = {"id": request_id, "ok": error is None}
        if error is None:
            body["result"] = result
        else:
            body["error"], body["code"] = error
        topic = self.topics.reply
        if message.response_topic and self.topics.may_reply_to(message.response_topic):
            topic = message.response_topic
        props: dict[str, Any] = {}
        if message.correlation_data is not None:
            props["CorrelationData"] = message.correlation_data
        payload = json.dumps(body, ensure_ascii=False, default=str, separators=(",", ":"))
        fut = self.client.publish(topic, payload, qos=1, properties=props or None)
        fut.add_done_callback(_log_failure)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _validate(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise CommandFailed(f"invalid command: {problems}", code="invalid_args") from exc


def _log_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        logger.warning("command reply not delivered: %s", fut.exception())


class ResyncArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_seq: StrictInt = Field(alias="from", ge=1)


class SetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    value: Any
