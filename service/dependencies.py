"""What routes receive through FastAPI's dependency injection: the settings, the model host,
the data plane and readiness, all made once by the app factory (`service.app`).

The providers are coroutines: FastAPI runs a plain function dependency in a thread pool, which
would cost more than the lookup itself on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.dataplane import DataPlane
from service.host import ModelHost
from service.settings import Settings


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _host(request: Request) -> ModelHost:
    return request.app.state.host


async def _plane(request: Request) -> DataPlane:
    return request.app.state.plane


async def _ready(request: Request) -> bool:
    """Tiers prepared and not draining (service.lifecycle)."""
    return request.app.state.is_ready()


SettingsDep = Annotated[Settings, Depends(_settings)]
HostDep = Annotated[ModelHost, Depends(_host)]
PlaneDep = Annotated[DataPlane, Depends(_plane)]
ReadyDep = Annotated[bool, Depends(_ready)]
