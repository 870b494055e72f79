"""Compatibility alias of :mod:`hamnet.data.record_keys` (the record and metadata keys).

New code imports ``from hamnet.data import record_keys as RK``; this name stays for the
modules that still say ``from hamnet.data import keys``.
"""

from hamnet.data.record_keys import *  # noqa: F401,F403
