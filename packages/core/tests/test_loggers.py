"""When W&B logs online: ``wandb_has_credentials()`` and ``wandb_offline()`` over an API key in
the environment, a ~/.netrc (or $NETRC) entry for W&B's host, the host that WANDB_BASE_URL
names, and WANDB_MODE, which decides when set; and the hermetic set-up every test runs in
(root conftest.py): none of this machine's W&B settings reach a test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from litforge.run.loggers import wandb_has_credentials, wandb_offline

KEY = "0123456789abcdef0123456789abcdef01234567"  # fake, shaped like a W&B key
DEFAULT_HOST = "api.wandb.ai"  # W&B's own server, when WANDB_BASE_URL is not set


def write_netrc(path: Path, host: str) -> Path:
    path.write_text(f"machine {host}\n  login user\n  password {KEY}\n")
    path.chmod(0o600)  # netrc refuses a password in a file that others can read
    return path


def test_every_test_starts_without_wandb_settings(hermetic_home: Path) -> None:
    assert not [name for name in os.environ if name.startswith("WANDB_")]
    assert os.environ["HOME"] == str(hermetic_home) == str(Path.home())
    assert os.environ["NETRC"] == str(hermetic_home / ".netrc")
    assert not any(hermetic_home.iterdir())  # no ~/.netrc, ~/.config/wandb, ~/.cache/wandb
    assert not wandb_has_credentials() and wandb_offline()


def test_an_api_key_in_the_environment_is_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_has_credentials() and not wandb_offline()


@pytest.mark.parametrize("where", ["NETRC", "home"])
def test_a_netrc_entry_for_the_default_host_is_online(
    where: str, hermetic_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if where == "NETRC":
        monkeypatch.setenv("NETRC", str(write_netrc(tmp_path / "my-netrc", DEFAULT_HOST)))
    else:  # no NETRC: ~/.netrc
        monkeypatch.delenv("NETRC")
        write_netrc(hermetic_home / ".netrc", DEFAULT_HOST)
    assert wandb_has_credentials() and not wandb_offline()


def test_a_netrc_entry_for_another_host_is_offline(hermetic_home: Path) -> None:
    write_netrc(hermetic_home / ".netrc", "example.org")
    assert not wandb_has_credentials() and wandb_offline()


def test_an_unreadable_netrc_is_offline(hermetic_home: Path) -> None:
    (hermetic_home / ".netrc").write_text("machine\n")  # no host name: a parse error
    assert not wandb_has_credentials() and wandb_offline()


def test_base_url_picks_the_netrc_host(
    hermetic_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private W&B server: its host's entry counts, the default host's does not."""
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org:8443")
    write_netrc(hermetic_home / ".netrc", DEFAULT_HOST)
    assert not wandb_has_credentials() and wandb_offline()
    write_netrc(hermetic_home / ".netrc", "wandb.example.org")
    assert wandb_has_credentials() and not wandb_offline()


@pytest.mark.parametrize(
    ("mode", "key", "offline"),
    [
        ("offline", True, True),
        ("dryrun", True, True),
        ("disabled", True, True),
        ("online", False, True),  # without a key W&B would wait at its login prompt
        ("online", True, False),
    ],
)
def test_wandb_mode_decides_when_set_but_never_online_without_a_key(
    mode: str, key: bool, offline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", mode)
    if key:
        monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_offline() is offline
    assert wandb_has_credentials() is key  # the mode does not change what credentials exist
