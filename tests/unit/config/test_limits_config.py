"""Limit keys of backend.yaml and proxy.yaml: tokenizer, token_count_margin, output_policy; errors name
the file, the key path and what was expected."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from lip.app import Settings, build_runtime
from lip.config import loader
from lip.core.errors import ConfigError
from shared_data import shared_encoding, write_tokenizer_json


def backend(config_dir: Path, text: str) -> Path:
    path = config_dir / "backends" / "b" / "backend.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def model(config_dir: Path, body: str) -> Path:
    return backend(config_dir, f"""\
        backend_type: custom
        api_base_url: https://api.example.com/v1
        models:
          m:
            {body}
        """)


def problems(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loader.load(config_dir)
    return caught.value.problems


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base", "mistral_tekken", "upstream"])
def test_named_tokenizers_are_accepted(tmp_path: Path, name: str) -> None:
    model(tmp_path, f"tokenizer: {name}")
    assert loader.load(tmp_path).backends["b"].config.models["m"].tokenizer == name


def test_an_unknown_tokenizer_says_what_is_expected(tmp_path: Path) -> None:
    path = model(tmp_path, "tokenizer: llama3")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}: models.m.tokenizer: expected o200k_base, cl100k_base, mistral_tekken, "
                              "upstream, or the path of a Hugging Face tokenizer.json")
    assert "(got 'llama3')" in problem


def test_the_old_estimate_is_refused_with_the_margin_as_its_replacement(tmp_path: Path) -> None:
    path = model(tmp_path, "tokenizer: estimate")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}: models.m.tokenizer: 'estimate' is gone")
    assert "limits.token_count_margin" in problem


def test_a_missing_tokenizer_json_names_file_key_and_expectation(tmp_path: Path) -> None:
    path = model(tmp_path, "tokenizer: tokenizers/llama.json")
    [problem] = problems(tmp_path)
    looked = path.parent / "tokenizers" / "llama.json"
    assert problem == (f"{path}: models.m.tokenizer: tokenizer file 'tokenizers/llama.json' not found (looked at "
                       f"{looked}); expected the path of a Hugging Face tokenizer.json, absolute or relative to "
                       "this file's directory")


def test_a_relative_tokenizer_json_is_found_beside_backend_yaml(tmp_path: Path) -> None:
    path = model(tmp_path, "tokenizer: tokenizers/llama.json")
    (path.parent / "tokenizers").mkdir()
    write_tokenizer_json(str(path.parent / "tokenizers" / "llama.json"))
    found = loader.load(tmp_path).backends["b"].config.models["m"].tokenizer
    assert found == str((path.parent / "tokenizers" / "llama.json").resolve())


def test_an_unreadable_tokenizer_json_is_a_config_error_at_build(tmp_path: Path) -> None:
    path = model(tmp_path, "tokenizer: broken.json")
    (path.parent / "broken.json").write_text("{not json")
    settings = dataclasses.replace(Settings(config_dir=tmp_path, config_dir_required=True),
                                   encodings=shared_encoding, usage_store="none")
    with pytest.raises(ConfigError) as caught:
        build_runtime(settings)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: models.m.tokenizer: {(path.parent / 'broken.json').resolve()} is not a "
                              "Hugging Face tokenizer.json")
    assert problem.endswith("expected a Hugging Face tokenizer.json (the file the model's repository ships)")


@pytest.mark.parametrize("value", ["0.1", "0", "0.5"])
def test_a_margin_is_a_fraction(tmp_path: Path, value: str) -> None:
    model(tmp_path, f"limits: {{token_count_margin: {value}}}")
    assert loader.load(tmp_path).backends["b"].config.models["m"].limits.token_count_margin == float(value)


@pytest.mark.parametrize("value", ["1", "-0.1", "10%", "1.5"])
def test_a_margin_outside_zero_to_one_is_refused(tmp_path: Path, value: str) -> None:
    path = model(tmp_path, f"limits: {{token_count_margin: {value!r}}}" if "%" in value
                 else f"limits: {{token_count_margin: {value}}}")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}: models.m.limits.token_count_margin:")


def test_output_policy_values(tmp_path: Path) -> None:
    path = model(tmp_path, "limits: {output_policy: truncate}")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}: models.m.limits.output_policy: Input should be 'clamp' or 'reject'")


def test_proxy_wide_defaults(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text("limits:\n  output_policy: reject\n  token_count_margin: 0.05\n")
    proxy = loader.load(tmp_path).proxy
    assert (proxy.limits.output_policy, proxy.limits.token_count_margin) == ("reject", 0.05)
    (tmp_path / "proxy.yaml").write_text("limits:\n  output_policy: never\n")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{tmp_path / 'proxy.yaml'}: limits.output_policy: Input should be 'clamp' or 'reject'")


def test_defaults_are_clamp_and_no_margin(tmp_path: Path) -> None:
    model(tmp_path, "limits: {max_output_tokens: 100}")
    config = loader.load(tmp_path)
    limits = config.backends["b"].config.models["m"].limits
    assert (limits.output_policy, limits.token_count_margin) == (None, None)
    assert (config.proxy.limits.output_policy, config.proxy.limits.token_count_margin) == ("clamp", 0.0)
