"""Free text fields of the APIs: stripped, and refused when nothing is left."""

from __future__ import annotations

from pydantic import AfterValidator


def not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


NotBlank = AfterValidator(not_blank)
"""``Annotated[str, Field(...), NotBlank]``: a text that is not only spaces, stored stripped."""
