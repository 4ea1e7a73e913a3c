"""The OpenFeature gherkin scenarios that apply to ``AbllmProvider``, read from the shared spec.

The spec's feature files describe a generic flag store (boolean, string and number flags, CEL
targeting). abllm's flags are experiments, resolved as objects, so the scenarios that apply are
those about the provider contract rather than that store's data: unknown flags, type
mismatches, a disabled (killed) flag, a fatal provider and its status, hooks seeing the error
details, and the evaluation context merged from every level reaching the provider. ``APPLY``
lists them; a listed scenario missing from the files fails the run. The flags the scenarios name
are experiments here (``object-disabled-flag`` killed through the runtime state).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from abllm.config import loads_experiments

from .openfeature_steps import STEPS, World, run

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "openfeature-gherkin"
FEATURES = (
    "evaluation.feature",
    "evaluation_v2.feature",
    "hooks.feature",
    "contextMerging.feature",
)


def _types_except_object(steps: list[str]) -> bool:
    return not any(s.startswith("a Object-flag") for s in steps)


def _object_only(steps: list[str]) -> bool:
    return any(s.startswith("a Object-flag") for s in steps)


def _ready_or_fatal(steps: list[str]) -> bool:
    # steps[0] is the Background's "a stable provider"; the example's own provider follows
    return steps[1] in ("a stable provider", "a fatal provider")


#: (feature file, scenario name) -> which of its examples apply (None: all).
APPLY: dict[tuple[str, str], Callable[[list[str]], bool] | None] = {
    ("evaluation.feature", "Flag not found"): None,
    ("evaluation.feature", "Type error"): None,
    ("evaluation_v2.feature", "Flag not found error"): None,
    ("evaluation_v2.feature", "Type mismatch error"): _types_except_object,  # ours are objects
    ("evaluation_v2.feature", "DISABLED reason"): _object_only,
    ("evaluation_v2.feature", "Provider in fatal state error"): None,
    ("evaluation_v2.feature", "Provider status accessibility"): _ready_or_fatal,
    ("hooks.feature", "Flag not found"): None,
    ("hooks.feature", "Type error"): None,
    **{
        ("contextMerging.feature", name): None
        for name in (
            "A context entry is added to a single level",
            "For a transaction, a context entry is added to each level with different keys",
            "For a hook, a context entry is added to each level with different keys",
            "For a transaction and a hook, a context entry is added to each level with different keys",  # noqa: E501 (the spec's wording)
            "For a transaction, a context entry in one level overwrites values with the same key from preceding levels",  # noqa: E501 (the spec's wording)
            "For a hook, a context entry in one level overwrites values with the same key from preceding levels",  # noqa: E501 (the spec's wording)
            "For a transaction and a hook, context entry in one level overwrites values with the same key from preceding levels",  # noqa: E501 (the spec's wording)
        )
    },
}

CONFIG = "experiments:\n" + "".join(
    f"""
  - id: {key}
    variants:
      - {{id: control, control: true, llm: {{model: sim-small}}}}
      - {{id: treatment, llm: {{model: sim-large}}}}
"""
    for key in (
        "boolean-flag",
        "string-flag",
        "integer-flag",
        "float-flag",
        "object-flag",
        "wrong-flag",
        "object-disabled-flag",
    )
)


@dataclass
class Scenario:
    feature: str
    name: str
    steps: list[tuple[str, list[list[str]] | None]]

    @property
    def id(self) -> str:
        texts = " / ".join(s for s, _ in self.steps if s.startswith(("a ", "A ")))
        return f"{self.feature}: {self.name}: {texts}"


def _pickles() -> list[Scenario]:
    from gherkin.parser import Parser
    from gherkin.pickles.compiler import Compiler
    from gherkin.token_scanner import TokenScanner

    out = []
    for feature in FEATURES:
        path = SPEC / feature
        doc = Parser().parse(TokenScanner(path.read_text(encoding="utf-8")))
        doc["uri"] = str(path)
        for pickle in Compiler().compile(doc):
            steps = []
            for step in pickle["steps"]:
                table = step.get("argument", {}).get("dataTable")
                rows = [[c["value"] for c in r["cells"]] for r in table["rows"]] if table else None
                steps.append((step["text"], rows))
            out.append(Scenario(feature, pickle["name"], steps))
    return out


def _applicable() -> tuple[list[Scenario], set[tuple[str, str]]]:
    if not SPEC.is_dir():
        return [], set()
    chosen, found = [], set()
    for sc in _pickles():
        key = (sc.feature, sc.name)
        if key not in APPLY:
            continue
        found.add(key)
        keep = APPLY[key]
        if keep is None or keep([s for s, _ in sc.steps]):
            chosen.append(sc)
    return chosen, found


SCENARIOS, FOUND = _applicable()


def test_the_spec_is_there_and_every_listed_scenario_is_found() -> None:
    if not SPEC.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the OpenFeature gherkin spec is missing: {SPEC}")
        pytest.skip(f"the OpenFeature gherkin spec is not beside the repository ({SPEC})")
    assert set(APPLY) == FOUND, f"listed but not in the spec: {set(APPLY) - FOUND}"
    assert len(SCENARIOS) >= 40


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(loads_experiments(CONFIG), tmp_path)
    yield w
    w.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[sc.id for sc in SCENARIOS])
def test_scenario(world: World, scenario: Scenario) -> None:
    run(world, scenario.steps)


def test_scenarios_use_every_step(world: World) -> None:
    """No dead step definitions: each one is used by an applicable scenario."""
    if not SCENARIOS:
        pytest.skip("the spec is not here")
    used = {
        fn
        for sc in SCENARIOS
        for text, _ in sc.steps
        for pattern, fn in STEPS
        if pattern.match(text)
    }
    assert used == {fn for _, fn in STEPS}
