"""Benchmark harness: `python -m bench [--quick]` (see `docs/performance.md`).

Every figure is printed next to a baseline measured in the same process run (plain asyncio doing
the same awaits and validations, or LangGraph running the same three nodes); the verdict is
always the ratio, since absolute times drift between runs and machines.
"""
