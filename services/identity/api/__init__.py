"""The identity service's HTTP API, one router per area."""

from . import access, clock, register

TITLE = "Identity service"
DESCRIPTION = ("The medical insurance agency's register: insured units and persons, online accounts, "
               "staff users, access tokens, monthly contributions, and the business clock.")
ROUTERS = [register.router, access.router, clock.router]
