"""The family records: one module per config section of systems, each with its ``FAMILY`` (beirflow.workflow.family)."""
