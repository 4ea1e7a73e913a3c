"""Who may enter an experiment: targeting rules, layers (namespaces) and holdouts."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | int | float | bool


class TargetingRule(BaseModel):
    """A condition on one unit attribute; every rule of an experiment must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str = Field(min_length=1)
    op: Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "regex", "exists"]
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> TargetingRule:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a list value")
        if self.op in ("gt", "gte", "lt", "lte") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float | str)
        ):
            raise ValueError(f"op {self.op} needs a number or string value")
        if self.op == "regex":
            if not isinstance(self.value, str):
                raise ValueError("op regex needs a string value")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc
        if self.op == "exists" and not isinstance(self.value, bool | None):
            raise ValueError("op exists takes true/false")
        return self


class Layer(BaseModel):
    """A namespace for mutually exclusive experiments.

    Experiments in the same layer with disjoint ``range`` never share a unit. Matches GrowthBook's
    namespace ``[name, start, end]``: the unit is in the layer when ``start <= h < end`` for
    ``h = hash("__" + name, unit, v1)``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    range: tuple[float, float] = (0.0, 1.0)

    @field_validator("range")
    @classmethod
    def _check_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        start, end = value
        if not (0.0 <= start < end <= 1.0):
            raise ValueError("range must be [start, end] with 0 <= start < end <= 1")
        return value
