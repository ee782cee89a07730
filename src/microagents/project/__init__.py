"""A project: the registry, the tools and the database a folder's workflows compile against,
and the Python builder for workflows.

Imports `registry`, `sql`, `graph`, `spec` and below."""
