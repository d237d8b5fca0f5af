"""Sources: one consistent read-only snapshot of a platform database per cycle, per engine."""
