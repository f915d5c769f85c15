"""quantdesk: one self-hosted trading platform over one domain core."""

__version__ = "0.1.0"
