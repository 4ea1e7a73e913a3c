"""abllm inside frameworks that applications already run.

- :mod:`abllm.integrations.openfeature`: ``AbllmProvider``, an OpenFeature provider whose
  object flags are experiments (public path: ``abllm.openfeature``; extra ``abllm[openfeature]``);
- :mod:`abllm.integrations.fastapi`: a FastAPI/Starlette dependency that assigns the request's
  unit (the signed-in user, else a first-visit cookie) and records outcomes.

Each module imports its framework itself; importing this package loads neither.
"""
