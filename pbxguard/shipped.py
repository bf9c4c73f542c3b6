"""What the package ships beside its code, as package data: the model under `models/`, and under `share/` (the
repository links `conf/` and `dialplan/` to it) the configuration with every default, the systemd unit, the
Grafana dashboard, the Asterisk and FreeSWITCH dialplans and the SIPp scenario. An installed wheel finds them
here."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHARE = Path(__file__).resolve().parent / "share"
CONF = SHARE / "conf"
DIALPLAN = SHARE / "dialplan"
CONFIG_FILE = CONF / "pbxguard.yaml"
UNIT_FILE = CONF / "pbxguard.service"
WEB_UNIT_FILE = CONF / "pbxguard-web.service"
