"""Where measurements go: TensorBoard event files, the metrics table, the reports."""
