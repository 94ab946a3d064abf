"""``medcard compare``: the same seeded population under two policies, side by side."""
