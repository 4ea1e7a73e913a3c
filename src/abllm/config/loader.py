"""Load experiment files from YAML with errors a person can act on.

Each problem becomes one line naming the file, the line, the experiment and the field, e.g.::

    examples/bad.yaml:12: experiment exp_a: variants[1].llm.provider: Input should be 'sim', ...

All problems of a file are reported at once, not just the first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import yaml

from abllm.config.experiment import Experiment, ExperimentFile
from abllm.errors import ConfigError

Loc = tuple[int | str, ...]


def format_loc(loc: Loc) -> str:
    """Render a pydantic error location as ``variants[1].llm.provider``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*)*): ")


def _parse_loc(text: str) -> Loc:
    """``rollout.stages[1].weights`` -> ``("rollout", "stages", 1, "weights")``."""
    loc: list[int | str] = []
    for part in text.split("."):
        name, _, index = part.partition("[")
        loc.append(name)
        if index:
            loc.append(int(index.rstrip("]")))
    return tuple(loc)


def _node_line(node: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest ancestor."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _problems(
    exc: pydantic.ValidationError, where: str, prefix: str, node: yaml.Node | None, base: Loc
) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        named = _FIELD_PREFIX.match(msg)
        if named:  # a cross-field check names its field as "field: message"
            loc = loc + _parse_loc(named.group(1))
            msg = msg[named.end() :]
        line = _node_line(node, base + loc)
        field = format_loc(loc)
        pos = f"{where}:{line}" if line else where
        lines.append(f"{pos}: {prefix}{field + ': ' if field else ''}{msg}")
    return lines


def parse_experiments(
    data: Any, where: str = "<config>", node: yaml.Node | None = None
) -> ExperimentFile:
    """Validate already-parsed YAML/JSON data; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict) or "experiments" not in data:
        raise ConfigError([f"{where}: top level must be a mapping with the key `experiments`"])
    raw = data["experiments"]
    if not isinstance(raw, list):
        raise ConfigError([f"{where}: experiments: must be a list of experiments"])
    problems: list[str] = []
    unknown = sorted(set(data) - {"experiments"})
    if unknown:
        problems.append(f"{where}: unknown top-level keys: {', '.join(unknown)}")
    experiments: list[Experiment] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        exp_id = item.get("id") if isinstance(item, dict) else None
        label = f"experiment {exp_id}: " if exp_id else f"experiments[{i}]: "
        try:
            exp = Experiment.model_validate(item)
        except pydantic.ValidationError as exc:
            problems.extend(_problems(exc, where, label, node, ("experiments", i)))
            continue
        if exp.id in seen:
            line = _node_line(node, ("experiments", i, "id"))
            pos = f"{where}:{line}" if line else where
            problems.append(
                f"{pos}: {label}id: duplicate experiment id (also experiments[{seen[exp.id]}])"
            )
            continue
        seen[exp.id] = i
        experiments.append(exp)
    if problems:
        raise ConfigError(problems)
    return ExperimentFile(experiments=experiments)


def load_experiments(path: str | Path) -> ExperimentFile:
    """Read and validate a YAML experiment file."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read file: {exc.strerror or exc}"]) from None
    return loads_experiments(text, where)


def loads_experiments(text: str, where: str = "<config>") -> ExperimentFile:
    """Validate YAML text; ``where`` names the source in error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{where}{line}: invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: invalid YAML: {exc}"]) from None
    return parse_experiments(data, where, node)
