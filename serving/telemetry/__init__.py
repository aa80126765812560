"""What the service tells its operators: Prometheus ``metrics`` (with the fixed label sets of
``labels``), JSON ``logs`` (bounded lines), and the ``drift_monitor`` of live traffic against
the training reference."""
