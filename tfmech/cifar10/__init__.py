"""CIFAR-10: the tutorial's convolutional network, trained and evaluated."""
