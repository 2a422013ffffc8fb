"""The engine: reconcile passes, the workflow runner, and the operations people call.

Nothing is imported here: `conveyor --help` and the read commands import only the engine
modules they use (see bench/cli.py)."""
