"""The pure domain: definitions, the flow DAG, the promotion state machine. No I/O, no clock."""
