import pytest

from pbxguard import config
from pbxguard.shipped import CONFIG_FILE


def write(tmp_path, text):
    path = tmp_path / "pbxguard.yaml"
    path.write_text(text)
    return path


def test_defaults_and_overrides(tmp_path):
    cfg = config.load(write(tmp_path, "fastagi:\n  port: 4600\npolicy:\n  rules:\n    silence:\n      action: HANGUP\n"))
    assert cfg.fastagi.port == 4600 and cfg.fastagi.host == "127.0.0.1"
    assert cfg.policy.rules["silence"].action == "HANGUP"
    assert cfg.policy.rules["fax"].require_proof is True
    assert config.load(None).audiosocket.port == 9092


@pytest.mark.parametrize("text, message", [
    ("fastagi:\n  prot: 4600\n", ":2: unknown key 'fastagi.prot'"),
    ("engine:\n  window_ms: fast\n", ":2: 'engine.window_ms' must be int"),
    ("allow: [10.0.0.300]\n", "'allow' entry '10.0.0.300'"),
    ("policy:\n  rules:\n    human:\n      action: BLOCK\n", "policy action 'BLOCK'"),
    ("policy:\n  rules:\n    robot: {action: HANGUP}\n", ":3: unknown key 'policy.rules.robot'"),
    ("fastagi: [1, 2\n", "not valid YAML"),
    ("callerid:\n  attestation_failed_action: HANGUP\n", "attestation alone never hangs up a call"),
])
def test_errors_name_the_key_and_line(tmp_path, text, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, text))
    assert message in str(err.value) and str(tmp_path) in str(err.value)


def test_allow_list():
    cfg = config.load(None)
    assert cfg.allowed("127.0.0.1") and cfg.allowed("::1")
    assert not cfg.allowed("192.0.2.10") and not cfg.allowed("not-an-ip")


def test_shipped_configuration_is_valid_and_equals_the_defaults():

    shipped = config.load(CONFIG_FILE)
    assert shipped == config.load(None)


def test_the_shipped_file_shows_every_setting():
    import dataclasses

    import yaml

    shown = yaml.safe_load((CONFIG_FILE).read_text())
    for name in config.SECTIONS:
        default = getattr(config.Config(), name)
        assert name in shown, name
        if dataclasses.is_dataclass(default):
            fields = {f.name for f in dataclasses.fields(default)}
            # engine.models defaults to the installed package's folder, so the file shows it as a comment
            assert set(shown[name] or {}) | ({"models"} if name == "engine" else set()) == fields, name


def test_with_makes_a_changed_copy_and_leaves_the_original():
    base = config.load(None)
    changed = base.with_(fastagi={"port": 0}, allow=("10.0.0.0/8",))
    assert (changed.fastagi.port, changed.allow) == (0, ("10.0.0.0/8",))
    assert (base.fastagi.port, base.allow) == (4573, ("127.0.0.0/8", "::1"))
    assert base.changed_sections(changed) == ["fastagi", "allow"]
