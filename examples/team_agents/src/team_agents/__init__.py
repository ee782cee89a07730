"""The refunds team's agents: YAML specs and templates shipped as package data.

microagents finds this folder through the ``microagents.agents`` entry point; nothing here is
imported to do so.
"""
