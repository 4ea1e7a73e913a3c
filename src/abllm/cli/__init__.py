"""The ``abllm`` command line (typer + rich)."""
