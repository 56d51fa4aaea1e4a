"""Where usage records go by default and how a relative path is read (lip.app.usage_store_url)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lip.app import Settings, usage_store_url
from lip.config import loader
from lip.usage.store import absolute, default_path


def test_the_default_is_the_per_user_data_directory() -> None:
    assert default_path({"XDG_DATA_HOME": "/srv/data", "HOME": "/home/u"}) == Path("/srv/data/lip/usage.db")
    assert default_path({"HOME": "/home/u"}) == Path("/home/u/.local/share/lip/usage.db")
    assert default_path({"XDG_DATA_HOME": "relative/dir", "HOME": "/home/u"}) == \
        Path("/home/u/.local/share/lip/usage.db"), "the XDG spec: a relative XDG_DATA_HOME is ignored"


def test_absolute_leaves_absolute_memory_and_other_urls_alone(tmp_path: Path) -> None:
    assert absolute("sqlite:///data/u.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/data/u.db"
    for url in ("sqlite:////var/lib/lip/u.db", "sqlite:///:memory:", "postgresql://u@h/db", "none"):
        assert absolute(url, tmp_path) == url


def settings(config_dir: Path, **extra: object) -> Settings:
    return Settings(config_dir=config_dir, config_dir_required=True,
                    environ={"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, **extra)  # type: ignore[arg-type]


def test_no_setting_means_the_per_user_file_wherever_the_proxy_starts(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert usage_store_url(s, loader.load(tmp_path, required=True)) == "sqlite:////xdg/lip/usage.db"


def test_a_relative_path_in_proxy_yaml_is_under_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text("usage:\n  store: sqlite:///records/usage.db\n")
    url = usage_store_url(settings(tmp_path), loader.load(tmp_path, required=True))
    assert url == f"sqlite:///{tmp_path.resolve()}/records/usage.db"


def test_the_flag_wins_and_a_relative_flag_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proxy.yaml").write_text("usage:\n  store: sqlite:///records/usage.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    url = usage_store_url(settings(tmp_path, usage_store="sqlite:///mine.db"), loader.load(tmp_path, required=True))
    assert url == f"sqlite:///{elsewhere.resolve()}/mine.db"
    assert usage_store_url(settings(tmp_path, usage_store="none"), loader.load(tmp_path, required=True)) == "none"

