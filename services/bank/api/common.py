"""What the bank's routers share: card-number paths and the channels a balance is asked through."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from shared.events.bank import PasswordChannel

AskedChannel = PasswordChannel
"""The channels a balance is asked through without the card password: online, phone,
counter (the POS asks with it: POST /v1/pos/balance-inquiries)."""
CardNumberPath = Annotated[str, Path(pattern=r"^[0-9]{12,19}$")]
