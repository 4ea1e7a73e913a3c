"""The web dashboard: experiments, results, rollout state and audit log as plain HTML.

Served by ``abllm serve`` under ``/dashboard``; no CDN, no JavaScript framework (a few lines of
vanilla JS refresh the figures), charts are inline SVG. Everything from configs, events and the
state store is HTML-escaped.

```python
from abllm.dashboard import build_dashboard_router
app.include_router(build_dashboard_router())   # reads request.app.state.abllm
```
"""

from abllm.dashboard.router import build_dashboard_router

__all__ = ["build_dashboard_router"]
