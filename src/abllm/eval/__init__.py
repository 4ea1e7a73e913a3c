"""Offline replay evaluation (``abllm eval``): scorers, an LLM judge, paired comparisons, drift.

Layout: pure cores with no I/O (``dataset`` parsing, ``scorers``, ``refusal``, ``judge`` prompt
and verdict, ``compare`` statistics, ``report``), the async ``runner`` that calls providers,
``store`` (runs as ``eval`` events) and ``service``, which ties one run together. This module
imports nothing itself, so ``import abllm.eval.refusal`` stays light.
"""
