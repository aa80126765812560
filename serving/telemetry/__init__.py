"""What the service tells its operators: Prometheus ``metrics``, JSON ``logs``, and the
``drift_monitor`` of live traffic against the training reference."""
