"""The service catalogue of a ward's one-stop desk, loaded from TOML and validated as a whole."""

from __future__ import annotations

import re
import tomllib
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from agent.errors import ConfigError, NotFound
from agent.settings import format_validation_error

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_range(text: str) -> tuple[time, time]:
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"opening hours must look like 07:30-11:30, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start = time(h1, m1)
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"opening hours end before they start: {text!r}")
    return start, end


class Hours(_Model):
    """Opening hours per weekday; a weekday not listed is closed."""

    mon: tuple[str, ...] = ()
    tue: tuple[str, ...] = ()
    wed: tuple[str, ...] = ()
    thu: tuple[str, ...] = ()
    fri: tuple[str, ...] = ()
    sat: tuple[str, ...] = ()
    sun: tuple[str, ...] = ()

    @field_validator("*")
    @classmethod
    def _ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            _parse_range(text)
        return value

    def is_open(self, local: datetime) -> bool:
        ranges: tuple[str, ...] = getattr(self, WEEKDAYS[local.weekday()])
        now = local.time()
        return any(start <= now < end for start, end in map(_parse_range, ranges))

    def today_text(self, local: datetime) -> str:
        ranges: tuple[str, ...] = getattr(self, WEEKDAYS[local.weekday()])
        return ", ".join(r.replace("-", "–") for r in ranges) or "không làm việc"


class Counter(_Model):
    number: int = Field(ge=1, le=99)
    name: str = Field(min_length=1)


class PriorityClass(_Model):
    code: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    name: str = Field(min_length=1)
    kiosk: bool = Field(True, description="Offered on the kiosk screen (else only given by a check-in).")


class Service(_Model):
    code: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    name: str = Field(min_length=1)
    prefix: str = Field(pattern=r"^[A-Z]{1,2}$")
    counters: tuple[int, ...] = Field(min_length=1)
    daily_cap: int = Field(ge=1, le=9999)
    typical_minutes: float = Field(gt=0, le=240)
    hours: Hours | None = None


class Group(_Model):
    code: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    name: str = Field(min_length=1)
    services: tuple[Service, ...] = Field(min_length=1)


class Office(_Model):
    name: str
    short_name: str
    hours: Hours


class Catalogue(_Model):
    office: Office
    counters: tuple[Counter, ...] = Field(min_length=1)
    priority_classes: tuple[PriorityClass, ...] = ()
    groups: tuple[Group, ...] = Field(min_length=1)
    # Services by code, built once (the catalogue is frozen, so it never goes stale).
    _by_code: dict[str, Service] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        counters = {c.number for c in self.counters}
        if len(counters) != len(self.counters):
            raise ValueError("counter numbers must be unique")
        codes: set[str] = set()
        for group in self.groups:
            for service in group.services:
                if service.code in codes:
                    raise ValueError(f"service code {service.code!r} is used twice")
                codes.add(service.code)
                unknown = set(service.counters) - counters
                if unknown:
                    raise ValueError(f"service {service.code!r} names unknown counters {sorted(unknown)}")
        if len({p.code for p in self.priority_classes}) != len(self.priority_classes):
            raise ValueError("priority class codes must be unique")
        self._by_code = {s.code: s for s in self.services()}
        return self

    # Lookups -----------------------------------------------------------------------------------
    def services(self) -> list[Service]:
        return [s for g in self.groups for s in g.services]

    def service(self, code: str) -> Service:
        service = self._by_code.get(code)
        if service is not None:
            return service
        raise NotFound(f"Không có dịch vụ '{code}' (unknown service)", code="unknown_service")

    def group_of(self, code: str) -> Group:
        for group in self.groups:
            if any(s.code == code for s in group.services):
                return group
        raise NotFound(f"Không có dịch vụ '{code}' (unknown service)", code="unknown_service")

    def counter(self, number: int) -> Counter:
        for counter in self.counters:
            if counter.number == number:
                return counter
        raise NotFound(f"Không có quầy số {number} (unknown counter)", code="unknown_counter")

    def services_of_counter(self, number: int) -> list[Service]:
        self.counter(number)
        return [s for s in self.services() if number in s.counters]

    def priority(self, code: str) -> PriorityClass:
        for pclass in self.priority_classes:
            if pclass.code == code:
                return pclass
        known = ", ".join(p.code for p in self.priority_classes)
        raise NotFound(f"Không có diện ưu tiên '{code}' (unknown priority class; known: {known})",
                       code="unknown_priority")

    def hours_of(self, service: Service) -> Hours:
        return service.hours if service.hours is not None else self.office.hours

    def is_open(self, service: Service, at: datetime, tz: ZoneInfo) -> bool:
        return self.hours_of(service).is_open(at.astimezone(tz))


def load_catalogue(path: Path) -> Catalogue:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: service catalogue not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(format_validation_error(exc))) from exc
