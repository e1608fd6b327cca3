"""doorbell: a video doorbell for the Raspberry Pi that answers to its owner alone."""

__version__ = "0.1.0"
