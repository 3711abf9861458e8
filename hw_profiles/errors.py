"""Errors raised while finding, reading or validating a device profile.

Every message is one line that names the problem, the value received and the fix, so a CLI
can print it as ``error: <message>``.
"""

from __future__ import annotations


class ProfileError(ValueError):
    """Base class for every device-profile error."""


class UnknownDeviceError(ProfileError):
    """No shipped profile has this name, or no file exists at this path."""


class MalformedProfileError(ProfileError):
    """A profile file exists but is not valid YAML or does not match the schema."""
