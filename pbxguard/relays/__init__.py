"""Relay programs: they carry a PBX's call to the daemon over its local sockets and classify nothing.

`eagi` runs under Asterisk's EAGI(); `freeswitch` is the ESL outbound server. Both speak the daemon's
own FastAGI and AudioSocket handlers through the sockets named in `contract`.
"""
