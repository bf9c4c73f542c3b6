"""Wire protocols, one file each: FastAGI, AudioSocket (and the EAGI relay, ESL). No screening logic here."""
