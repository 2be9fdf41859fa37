"""Training: the train states and the pure step, losses, stabilizers, the loop and its safety nets."""
