"""TensorFlow Mechanics 101: a two-hidden-layer MNIST classifier."""
