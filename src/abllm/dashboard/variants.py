"""The variants' LLM configs side by side, with each treatment's prompt diffed against control.

The diff is ``difflib.unified_diff`` of the system prompt and the prompt template (control's
first, the treatment's second), so a reviewer sees exactly which words changed between arms;
the prompt version each arm serves heads its column. Every string is escaped.
"""

from __future__ import annotations

import difflib
import json

from abllm.config import Experiment, Variant
from abllm.dashboard.html import esc

_FIELDS = ("provider", "model", "prompt_version", "temperature", "top_p", "max_tokens")


def _prompt(v: Variant) -> list[str]:
    llm = v.llm
    lines = []
    if llm.system_prompt is not None:
        lines += [
            "# system prompt" + (" (prepended)" if llm.system_prompt_mode == "prepend" else "")
        ]
        lines += llm.system_prompt.splitlines()
    if llm.prompt_template is not None:
        lines += ["# prompt template", *llm.prompt_template.splitlines()]
    return lines


def prompt_diff(control: Variant, treatment: Variant) -> str:
    """The unified diff of the treatment's prompts against control's, as marked-up lines."""
    diff = list(
        difflib.unified_diff(
            _prompt(control), _prompt(treatment), control.id, treatment.id, lineterm="", n=2
        )
    )
    if not diff:
        return '<p class="muted">same prompts as control</p>'
    out = []
    for line in diff[2:]:  # the ---/+++ header: the column already names both arms
        cls = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
        out.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line) + "\n")
    return f'<pre class="diff">{"".join(out)}</pre>'


def _rows(v: Variant) -> list[tuple[str, str]]:
    llm = v.llm
    rows = [(f, str(getattr(llm, f))) for f in _FIELDS if getattr(llm, f) is not None]
    if llm.stop:
        rows.append(("stop", json.dumps(llm.stop)))
    if llm.few_shot:
        rows.append(("few_shot", f"{len(llm.few_shot)} example(s)"))
    rows += [(f"params.{k}", json.dumps(val, default=str)) for k, val in llm.params.items()]
    rows.append(("weight", f"{v.weight:g}"))
    return rows


def _config(v: Variant, control: Variant) -> str:
    """The config as a list; a value differing from control's is marked ``differs``."""
    base = dict(_rows(control))
    return "".join(
        f'<dt>{esc(k)}</dt><dd class="{"same" if base.get(k) == val else "differs"}">'
        f"{esc(val)}</dd>"
        for k, val in _rows(v)
    )


def variants_section(experiment: Experiment) -> str:
    """One column per variant: its config, prompt version, and its prompt diff to control."""
    control = experiment.control
    cols = []
    for v in experiment.variants:
        version = v.llm.prompt_version or "unversioned"
        role = " <span class='muted'>(control)</span>" if v.id == control.id else ""
        diff = "" if v.id == control.id else prompt_diff(control, v)
        if v.id == control.id and _prompt(v):
            diff = f'<pre class="diff">{esc(chr(10).join(_prompt(v)))}</pre>'
        desc = f"<p class='muted'>{esc(v.description)}</p>" if v.description else ""
        cols.append(
            f'<div class="variant-config" data-variant="{esc(v.id)}">'
            f"<h3>{esc(v.id)}{role} <span class='tag'>prompt {esc(version)}</span></h3>{desc}"
            f'<dl class="kv">{_config(v, control)}</dl>{diff}</div>'
        )
    return f'<div class="configs">{"".join(cols)}</div>'
