"""Command-line machinery of the binaries: flags and their checks, the quiet
console, the train_dir lock, and --init_checkpoint. Lessons never import it."""
