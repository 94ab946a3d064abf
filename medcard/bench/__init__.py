"""``medcard bench``: the ecosystem's figures beside baselines measured in the same run.

One module per row (``loss``, ``pos``, ``relay``, ``accounts`` for the projection and the
month end); ``run`` orchestrates, ``cli`` prints the table and writes the JSON;
``baseline_app`` is the bare FastAPI process the POS row compares with."""
