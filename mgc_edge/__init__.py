"""mgc-edge: train, export and run micro-gesture image classifiers on the edge."""

__version__ = "0.1.0"
