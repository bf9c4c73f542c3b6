"""pbxguard: screen the first two seconds of a phone call."""

__version__ = "0.1.0"
