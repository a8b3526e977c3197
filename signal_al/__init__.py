"""SIGnAL: Self-Informed Generative Active Learning."""

__version__ = "0.1.0"
