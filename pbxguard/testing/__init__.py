"""Test helpers that ship with pbxguard: replays of real Asterisk traces and fakes for what a real PBX cannot
be made to do on purpose. `replay` reads the captured bytes; `asterisk`, `eagi` and `freeswitch` play
the PBX side; `dialplan` runs the shipped Asterisk dialplan against the daemon; `web` serves and drives the
web page over loopback."""
