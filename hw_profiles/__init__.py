"""Device profiles: cited hardware numbers and published latencies, as validated YAML files.

Example:
    >>> from hw_profiles import list_profiles, load_profile, parse_device
    >>> {'host', 'jetson-orin'} <= set(list_profiles())
    True
    >>> load_profile("jetson-orin").peak_compute["fp16"].value
    42.5
    >>> parse_device("jetson-orin:15W")[1]
    '15W'
"""

from __future__ import annotations

from hw_profiles.errors import MalformedProfileError, ProfileError, UnknownDeviceError
from hw_profiles.loader import list_profiles, load_profile, parse_device
from hw_profiles.quantity import PRECISIONS, UNITS, Precision, Quantity
from hw_profiles.reference import REFERENCE_MODELS, ReferenceModel
from hw_profiles.schema import SCHEMA_VERSION, CalibrationPoint, DeviceProfile, PowerMode

__all__ = [
    "PRECISIONS",
    "REFERENCE_MODELS",
    "SCHEMA_VERSION",
    "UNITS",
    "CalibrationPoint",
    "DeviceProfile",
    "MalformedProfileError",
    "PowerMode",
    "Precision",
    "ProfileError",
    "Quantity",
    "ReferenceModel",
    "UnknownDeviceError",
    "list_profiles",
    "load_profile",
    "parse_device",
]
