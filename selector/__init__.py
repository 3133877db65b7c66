"""selector: run only the tests a git change can affect."""

__version__ = "0.1.0"
