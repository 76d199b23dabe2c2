"""hwofa: hardware-aware once-for-all deployment. The front door: CLI and end-to-end pipeline."""

__version__ = "0.1.0"
