"""Keep a :class:`BanditState` in a JSON file across restarts (the package's only I/O).

Writes are atomic: the new state goes to a temporary file in the same directory, is fsynced,
and replaces the old one with ``os.replace``, so a crash leaves either the old or the new
state, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from abllm.bandit.state import BanditState
from abllm.errors import ValidationError


def save_state(path: str | os.PathLike[str], state: BanditState) -> None:
    """Write ``state`` to ``path`` atomically (parent directories are created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(state.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: str | os.PathLike[str]) -> BanditState | None:
    """The state saved at ``path``, or None when no file exists yet."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return BanditState.from_json(text)
    except ValidationError as exc:
        raise ValidationError(f"{target}: {exc.message}") from None
