"""Text fields of the APIs: no required text accepts only blanks (spaces, tabs, newlines,
the ideographic space), anywhere, and no stored text holds control or format characters.

``Text(n)`` is the type of what is stored and shown (names, references, letters of proof):
at most n characters, stripped, refused when nothing is left or when it holds a control
or format character (they reach terminals and logs). ``Secret(n)`` is the type of a
password: refused when only blanks, otherwise kept exactly as typed (a blank inside or
around a pass phrase is part of it). Both are the metadata of an annotation, so that type
checkers see a ``str``: ``letter_reference: Annotated[str, Text(60, description="...")]``;
the length limits come before the blank check, so a too long text is refused with
pydantic's own "at most n characters".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, Field

BLANK = "must not be blank"
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
"""Control (NUL, ESC, line breaks...), format (bidirectional overrides, zero-width), surrogate
and private-use characters: nothing a name holds, and they reach terminals and logs."""


def not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError(BLANK)
    if any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in stripped):
        raise ValueError("must not contain control or format characters")
    return stripped


def not_only_blanks(value: str) -> str:
    if not value.strip():
        raise ValueError(BLANK)
    return value


NotBlank = AfterValidator(not_blank)
"""``Annotated[str, Field(...), NotBlank]``: a text that is not only spaces and holds no
control or format character, stored stripped."""


class Text(GroupedMetadata):
    """A required text of at most ``max_length`` characters, not only blanks, no control
    characters; stored stripped (``Annotated[str, Text(n)]``)."""

    def __init__(self, max_length: int, **field: Any) -> None:
        self.rules = (Field(min_length=1, max_length=max_length, **field), NotBlank)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rules)


class Secret(GroupedMetadata):
    """A password or pass phrase: not only blanks; never altered (``Annotated[str, Secret(n)]``)."""

    def __init__(self, max_length: int, min_length: int = 1, **field: Any) -> None:
        self.rules = (Field(min_length=min_length, max_length=max_length, **field), AfterValidator(not_only_blanks))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rules)


IdNumberText = Annotated[str, Text(40, description="Resident ID number as read from the ID card (18 characters, "
                                                   "GB 11643 check digit)")]
"""An ID number as typed; the service that uses it checks it (GB 11643) and says what is wrong."""
