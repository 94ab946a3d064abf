"""The identity service's HTTP API, one router per area."""

from . import access, clock, register

routers = [register.router, access.router, clock.router]
