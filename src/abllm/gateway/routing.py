"""Which experiment a request belongs to, and which unit it is for.

Routing (issue 6): the request's ``model`` when it equals an experiment id or an alias, else the
``X-Abllm-Experiment`` header, else the default route: the configured default experiment, or the
only experiment when the file holds one. The unit id comes from the header of the experiment's
unit type (``X-Abllm-Org``, ``X-Abllm-Session``), else the body's ``user``, else ``X-Abllm-Unit``;
an experiment with ``fallback_unit`` hashes that unit's header when its own is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from abllm.config import Experiment, ExperimentFile
from abllm.errors import NotFound

HEADER_EXPERIMENT = "x-abllm-experiment"
HEADER_UNIT = "x-abllm-unit"
HEADER_ORG = "x-abllm-org"
HEADER_SESSION = "x-abllm-session"
HEADER_TRACE = "x-abllm-trace-id"
ATTR_PREFIX = "x-abllm-attr-"

_UNIT_HEADER = {"org": HEADER_ORG, "session": HEADER_SESSION, "user": HEADER_UNIT}


@dataclass(frozen=True)
class Router:
    """Resolves experiments by id or alias; built once per config."""

    by_name: Mapping[str, Experiment]
    default: Experiment | None
    known: str

    @classmethod
    def build(cls, config: ExperimentFile, default_experiment: str | None = None) -> Router:
        """Index ids and aliases; ``default_experiment`` (an id or alias) must exist."""
        by_name: dict[str, Experiment] = {}
        for exp in config.experiments:
            for name in (exp.id, *exp.aliases):
                by_name.setdefault(name, exp)
        default: Experiment | None = None
        if default_experiment is not None:
            if default_experiment not in by_name:
                raise NotFound(
                    f"default experiment {default_experiment!r} is not in the config "
                    f"(known: {', '.join(sorted(by_name)) or 'none'})"
                )
            default = by_name[default_experiment]
        elif len(config.experiments) == 1:
            default = config.experiments[0]
        known = ", ".join(sorted(by_name)) or "none"
        return cls(by_name=by_name, default=default, known=known)

    def route(self, model: str, header: str | None) -> Experiment:
        """The experiment for this request; :class:`NotFound` when nothing matches."""
        exp = self.by_name.get(model)
        if exp is not None:
            return exp
        if header:
            exp = self.by_name.get(header)
            if exp is None:
                raise NotFound(
                    f"X-Abllm-Experiment names unknown experiment {header!r} (known: {self.known})"
                )
            return exp
        if self.default is not None:
            return self.default
        raise NotFound(
            f"model {model!r} is not an experiment id or alias and no X-Abllm-Experiment header "
            f"was sent; there is no default route (known: {self.known})"
        )


def unit_id_for(exp: Experiment, user: str | None, headers: Mapping[str, str]) -> str | None:
    """The unit id this experiment hashes, or None for an anonymous request."""
    unit: str | None
    if exp.unit == "user":
        unit = user or headers.get(HEADER_UNIT)
    else:
        unit = headers.get(_UNIT_HEADER[exp.unit]) or headers.get(HEADER_UNIT)
    if not unit and exp.fallback_unit is not None:
        unit = user if exp.fallback_unit == "user" else None
        unit = unit or headers.get(_UNIT_HEADER[exp.fallback_unit])
    return unit or None


def attributes_from(headers: Mapping[str, str], user: str | None) -> dict[str, str]:
    """Targeting attributes: ``X-Abllm-Attr-<name>`` headers plus the user/org/session ids."""
    attrs: dict[str, str] = {}
    for key, value in headers.items():
        if key.startswith(ATTR_PREFIX):
            attrs[key[len(ATTR_PREFIX) :].replace("-", "_")] = value
    if user:
        attrs.setdefault("user", user)
    for name in ("org", "session"):
        header_value = headers.get(_UNIT_HEADER[name])
        if header_value:
            attrs.setdefault(name, header_value)
    return attrs
