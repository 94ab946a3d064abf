"""The contract for external consumers, generated from the pydantic event models.

- :mod:`.schemas`: one JSON Schema per event type (the payload, its description and
  sensitive-field classification);
- :mod:`.asyncapi`: the AsyncAPI 3.0 document of every topic, key, message and header;
- :mod:`.generate`: writes both under ``contract/`` (run by ``python -m medcard.contract``, which adds who applies what)
  and checks that the committed files are current (``--check``);
- :mod:`.compat`: the check that a model change does not break an existing consumer;
- :mod:`.published`: what that check compares with: the schemas committed on main and at
  HEAD (git), and the working tree's;
- :mod:`.router`: the FastAPI router serving the contract from every service.
"""
