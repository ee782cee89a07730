"""The graph: compiling specs into checked, runnable data — compiled agents, the workflow
compiler and its static checks, compiled workflows, Mermaid/DOT rendering, the tool registry.

Imports `spec` and below. A compiled workflow is data: it does not import the engine that
runs it."""
