"""HTTP method semantics (RFC 9110): HEAD wherever GET is served, and the Allow header of a
405."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute


def serve_head_where_get(router: APIRouter) -> None:
    """Add HEAD to every GET route of `router` (the GET answer's headers; the server sends no
    body). Kept out of the OpenAPI document, where it would repeat every GET operation."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and route.methods == {"GET"}:
            router.add_api_route(
                route.path.removeprefix(router.prefix),  # the router adds its prefix back
                route.endpoint,
                methods=["HEAD"],
                name=f"{route.name}_head",
                include_in_schema=False,
                responses=route.responses,
            )


def allow_header(route_methods: str) -> str:
    """The Allow header of a 405 from the methods of the route that matched the path (as the
    router names them): HEAD goes with GET, which the router serves on a route of its own."""
    methods = {m.strip() for m in route_methods.split(",") if m.strip()}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
