"""Text fields of the APIs: no required text accepts only blanks (spaces, tabs, newlines,
the ideographic space), anywhere.

``Text`` is for what is stored and shown (names, references, letters of proof): stripped,
refused when nothing is left. ``Secret`` is for passwords: refused when only blanks, and
otherwise kept exactly as typed (a blank inside or around a pass phrase is part of it).
Each field adds its own limits: ``Annotated[Text, Field(max_length=100)]``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

BLANK = "must not be blank"


def not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError(BLANK)
    return stripped


def not_only_blanks(value: str) -> str:
    if not value.strip():
        raise ValueError(BLANK)
    return value


NotBlank = AfterValidator(not_blank)
"""``Annotated[str, Field(...), NotBlank]``: a text that is not only spaces, stored stripped."""
Text = Annotated[str, Field(min_length=1), NotBlank]
"""A required text: at least one character that is not a blank; stored stripped."""
Secret = Annotated[str, Field(min_length=1), AfterValidator(not_only_blanks)]
"""A password or pass phrase: not only blanks; never altered."""
IdNumberText = Annotated[Text, Field(max_length=40, description="Resident ID number as read from the ID card "
                                                                "(18 characters, GB 11643 check digit)")]
"""An ID number as typed; the service that uses it checks it (GB 11643) and says what is wrong."""
