"""config.json: discovery, validation naming the key, atomic writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cidx_shared import config as cfgmod


def test_init_creates_private_dir_and_defaults(tmp_path) -> None:
    path = cfgmod.init_project(tmp_path)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cfg = cfgmod.load_config(path)
    assert cfg["daemon"]["retry_delays_ms"] == [100, 500, 1000, 2000]
    assert cfg["daemon"]["ttl_minutes"] == 10


def test_nearest_config_wins(tmp_path) -> None:
    outer = cfgmod.init_project(tmp_path)
    inner_root = tmp_path / "a" / "b"
    inner_root.mkdir(parents=True)
    assert cfgmod.find_config(inner_root / ".") == str(outer)
    inner = cfgmod.init_project(tmp_path / "a")
    assert cfgmod.find_config(inner_root) == str(inner)
    above = cfgmod.find_config(tmp_path.parent)
    assert above is None or not above.startswith(str(tmp_path))


@pytest.mark.parametrize("section, key, value", [
    ("daemon", "ttl_minutes", -1), ("daemon", "enabled", "yes"), ("daemon", "retry_delays_ms", []),
    ("daemon", "retry_delays_ms", [100, "x"]), ("daemon", "command", "cidx-daemon"),
    ("index", "max_file_bytes", 1.5), ("daemon", "max_restarts", 99),
    ("daemon", "ttl_minutes", float("nan")), ("daemon", "restart_window_minutes", float("inf")),
    ("daemon", "ttl_minutes", float("-inf")), ("index", "skip_secrets", 1),
    ("index", "secret_patterns", ".env"),
])
def test_invalid_values_name_the_key(tmp_path, section: str, key: str, value: object) -> None:
    path = cfgmod.init_project(tmp_path)
    data = json.loads(path.read_text())
    data[section][key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(cfgmod.ConfigError, match=f"{section}.{key}"):
        cfgmod.load_config(path)


def test_unknown_keys_are_kept(tmp_path) -> None:
    path = cfgmod.init_project(tmp_path)
    data = json.loads(path.read_text())
    data["daemon"]["future_knob"] = 3
    data["plugins"] = {"x": 1}
    cfgmod.save_config(path, cfgmod.validate_config(data))
    again = cfgmod.load_config(path)
    assert again["daemon"]["future_knob"] == 3 and again["plugins"] == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left


def test_broken_json_is_one_clear_error(tmp_path) -> None:
    path = cfgmod.init_project(tmp_path)
    path.write_text("{not json")
    with pytest.raises(cfgmod.ConfigError, match="not valid JSON"):
        cfgmod.load_config(path)


def test_nan_and_infinity_in_the_file_are_refused(tmp_path) -> None:
    """JSON as Python reads it accepts NaN and Infinity literals: they must not pass as numbers."""
    path = cfgmod.init_project(tmp_path)
    for literal in ("NaN", "Infinity", "1e999"):
        path.write_text('{"daemon": {"ttl_minutes": ' + literal + "}}")
        with pytest.raises(cfgmod.ConfigError, match=r"daemon\.ttl_minutes must be a positive number"):
            cfgmod.load_config(path)


def test_the_user_config_may_name_the_daemon_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cfgmod.load_user_config() == {}
    (tmp_path / "cidx").mkdir()
    user = tmp_path / "cidx" / "config.json"
    user.write_text(json.dumps({"daemon": {"command": ["/opt/cidx-daemon"]}}))
    user.chmod(0o600)
    assert cfgmod.load_user_config()["daemon"]["command"] == ["/opt/cidx-daemon"]
    user.chmod(0o666)
    with pytest.raises(cfgmod.ConfigError, match="others may write it"):
        cfgmod.load_user_config()
    user.chmod(0o600)
    user.write_text(json.dumps({"daemon": {"command": "rm -rf /"}}))
    with pytest.raises(cfgmod.ConfigError, match=r"daemon\.command must be null or a non-empty list"):
        cfgmod.load_user_config()
