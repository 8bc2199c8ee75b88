"""The migration tools' library: event files read back, run comparison
(``compare_runs``), and a TensorBoard server for tests and screenshots."""
