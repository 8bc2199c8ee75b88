"""MNIST with summaries ("TensorBoard: Visualizing Learning")."""
