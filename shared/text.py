"""Free text fields of the APIs: stripped, refused when nothing is left or when they hold
control characters."""

from __future__ import annotations

import unicodedata

from pydantic import AfterValidator

CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
"""Control (NUL, ESC, line breaks...), format (bidirectional overrides, zero-width), surrogate
and private-use characters: nothing a name holds, and they reach terminals and logs."""


def not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in stripped):
        raise ValueError("must not contain control or format characters")
    return stripped


NotBlank = AfterValidator(not_blank)
"""``Annotated[str, Field(...), NotBlank]``: a text that is not only spaces and holds no
control or format character, stored stripped."""
