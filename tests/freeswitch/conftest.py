"""The FreeSWITCH tests screen the same openings as the Asterisk ones, so the two paths can be compared."""

from tests.asterisk.conftest import calls_audio  # noqa: F401  (a shared fixture)
