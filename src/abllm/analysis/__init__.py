"""Warehouse-native experiment analysis: metrics -> SQL in the store -> stats -> a decision.

```python
from abllm.analysis import analyze, result_to_json
result = analyze(experiment, open_store("duckdb:///./abllm-data/events.duckdb"))
result.recommendation.decision, result_to_json(result)["metrics"]["rating"]
```
"""

from abllm.analysis.daily import DailyPoint, daily_results
from abllm.analysis.engine import analyze
from abllm.analysis.report import print_result
from abllm.analysis.result import (
    ArmResult,
    Comparison,
    Decision,
    ExperimentResult,
    GuardrailStatus,
    MetricResult,
    Recommendation,
    SrmResult,
    VariantResult,
)
from abllm.analysis.serialize import result_to_json
from abllm.analysis.specs import MetricSpec, builtin_specs

__all__ = [
    "ArmResult",
    "Comparison",
    "DailyPoint",
    "Decision",
    "ExperimentResult",
    "GuardrailStatus",
    "MetricResult",
    "MetricSpec",
    "Recommendation",
    "SrmResult",
    "VariantResult",
    "analyze",
    "builtin_specs",
    "daily_results",
    "print_result",
    "result_to_json",
]
