"""The intake corpus: real-world-shaped mail and the outcome each must have."""
