"""Specs: what authors write — agent and workflow specs, YAML loading with source
positions, JSON Schemas, sandboxed expressions and templates, semantic versions.

Imports only the package's base modules (errors, settings). Public names are at the top
level (`microagents.AgentSpec`, …)."""
