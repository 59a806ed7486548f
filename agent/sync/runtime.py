"""Runtime settings that the `set` command may change: a small whitelist other parts add to.

Each entry names its type (validated with pydantic, so `"5"` for a float is refused, not coerced
from anything), how to read it and how to apply it. Changes last until the agent restarts; the
config file stays the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent.errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSetting:
    name: str
    adapter: TypeAdapter[Any]
    get: Callable[[], Any]
    apply: Callable[[Any], None]
    description: str


class RuntimeSettings:
    def __init__(self) -> None:
        self._entries: dict[str, RuntimeSetting] = {}

    def add(self, name: str, type_: Any, get: Callable[[], Any], apply: Callable[[Any], None],
            description: str = "") -> None:
        """Allow `set name value`; `type_` may carry constraints, e.g. Annotated[float, Field(ge=0, le=1)]."""
        if name in self._entries:
            raise ValueError(f"runtime setting {name!r} registered twice")
        self._entries[name] = RuntimeSetting(name, TypeAdapter(type_), get, apply, description)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> dict[str, Any]:
        return {name: entry.get() for name, entry in sorted(self._entries.items())}

    def set(self, name: str, value: Any) -> Any:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"{name!r} cannot be changed at run time; allowed: {', '.join(self.names())}",
                           code="unknown_setting")
        try:
            checked = entry.adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"{name}: {first['msg']}", code="invalid_value") from exc
        entry.apply(checked)
        logger.info("runtime setting %s changed to %r", name, checked)
        return entry.get()
