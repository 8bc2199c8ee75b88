"""The migration tools' library: event files read back, run comparison
(``compare_runs``), TF1 checkpoints converted for a TF2 model
(``convert_checkpoint``: checkpoint_conversion, checkpoint_rules), and a
TensorBoard server for tests and screenshots."""
