"""The HTTP server: ``create_app`` (FastAPI + the raw gateway route) and a thread runner.

```python
from abllm.server import create_app, ServerThread
app = create_app(load_experiments("examples/summarize.yaml"), open_store(None))
with ServerThread(app) as server:          # uvicorn on a free port
    print(server.url)                      # http://127.0.0.1:PORT
```
"""

from abllm.server.app import AbllmApp, AppState, create_app, error_response
from abllm.server.run import ServerThread, serve

__all__ = ["AbllmApp", "AppState", "ServerThread", "create_app", "error_response", "serve"]
