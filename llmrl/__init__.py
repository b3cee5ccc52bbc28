"""Shared core of the framework: environments and their LLM-facing descriptions, step
counting, evaluation, tracking and the run glue. Methods import this; it imports no method."""
