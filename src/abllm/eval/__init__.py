"""Offline replay evaluation (``abllm eval``): scorers, an LLM judge, paired comparisons, drift.

Layout: pure cores with no I/O (``dataset`` parsing, ``scorers``, ``judge`` prompt and verdict,
``compare`` statistics, ``report``), the async ``runner`` that calls providers, ``store`` (runs
as ``eval`` events), ``service``, which ties one run together, and ``schedule``, the
controller's scheduled replays. The refusal detector lives in ``abllm.providers.refusal`` so
the gateway can use it too. This module imports nothing itself.
"""
