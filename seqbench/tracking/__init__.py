"""Run-event plugins that record results elsewhere (MLflow)."""
