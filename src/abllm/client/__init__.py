"""The Python SDK: local assignment from synced config, event batching, ``wrap_openai``.

```python
from abllm import Client
from openai import OpenAI

client = Client(server_url="http://127.0.0.1:8080")       # or Client("experiments.yaml")
a = client.assign("exp_summarize_v2", "user-42")          # local: no network call per unit
llm = client.wrap_openai(OpenAI())
llm.chat.completions.create(model="exp_summarize_v2", user="user-42", messages=[...])
client.track("exp_summarize_v2", "user-42", trace_id=llm.last.trace_id, thumbs_up=True)
client.close()                                            # delivers what is buffered
```

See ``docs/client.md``. The OpenAI wrapper's classes live in :mod:`abllm.client.openai_wrap`,
imported on the first ``wrap_openai`` call (the ``openai`` package and the gateway's shaping
code take ≈ 0.4 s to import, which ``import abllm`` should not pay).
"""

from abllm.client.core import Client
from abllm.client.model import ClientSettings, LastCall
from abllm.client.sync import Snapshot

__all__ = ["Client", "ClientSettings", "LastCall", "Snapshot"]
