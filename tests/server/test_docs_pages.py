"""``/docs`` and ``/redoc`` load everything from this server (an asset scan: no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from abllm.config import load_experiments
from abllm.server import create_app

ROOT = Path(__file__).resolve().parents[2]
#: Attributes and calls by which a page makes the browser fetch something.
FETCHES = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)|url\(\s*["']?([^"')]+)|url:\s*["']([^"']+)"""
)


def test_docs_and_redoc_fetch_nothing_off_this_server() -> None:
    app = create_app(load_experiments(ROOT / "examples" / "summarize.yaml"))
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200
            urls = [u for m in FETCHES.findall(r.text) for u in m if u]
            assert urls, page
            for url in urls:
                assert url.startswith(("/", "data:")), f"{page} fetches {url}"
                if url.startswith("/"):
                    assert client.get(url).status_code == 200, url
            assert "validatorUrl" in r.text or page == "/redoc"
        css = client.get("/docs/assets/swagger-ui.css").text
        assert not re.search(r"url\(\s*[\"']?https?:", css)
        assert client.get("/docs/assets/../auth.py").status_code == 404
