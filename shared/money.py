"""Amounts of money in the APIs: integer fen, sent as a JSON integer."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_FEN = 100_000_000
"""1,000,000 yuan: above any purchase or monthly contribution, far below MongoDB's 8-byte integers."""

FenAmount = Annotated[int, Field(strict=True, gt=0, le=MAX_FEN, description="Integer fen, a JSON integer")]
"""A positive amount in fen. Strict: ``"100"``, ``true`` and ``100.0`` are refused, not read as 100 or 1."""
