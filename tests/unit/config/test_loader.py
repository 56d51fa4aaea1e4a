"""lip.config.loader: discovery, preset merging, validation and error reporting (SPEC §2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lip.config import loader
from lip.config.loader import Config
from lip.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "config"
EXAMPLE_NAMES = [
    "internal-llm",
    "openai-specialized",
    "multi-model",
    "headers-example",
    "custom-auth",
    "timeouts-example",
    "large-context",
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def backend(config_dir: Path, name: str, text: str) -> Path:
    return write(config_dir / "backends" / name / "backend.yaml", text)


def problems(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loader.load(config_dir)
    return caught.value.problems


def one_problem(config_dir: Path) -> str:
    found = problems(config_dir)
    assert len(found) == 1, found
    return found[0]


CUSTOM = """\
backend_type: custom
api_base_url: https://api.example.com/v1
"""


# ---- the examples of examples/config -----------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> Config:
    return loader.load(EXAMPLES, required=True)


def test_every_example_directory_is_covered() -> None:
    assert sorted(p.name for p in (EXAMPLES / "backends").iterdir()) == sorted(EXAMPLE_NAMES)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_loads_on_its_own(tmp_path: Path, name: str) -> None:
    text = (EXAMPLES / "backends" / name / "backend.yaml").read_text(encoding="utf-8")
    backend(tmp_path, name, text)
    config = loader.load(tmp_path, required=True)
    loaded = config.backends[name]
    assert loaded.preset is False
    assert loaded.root_type == "custom"
    assert loaded.protocol == "openai"
    assert loaded.source == str(tmp_path / "backends" / name / "backend.yaml")
    assert loaded.config.backend_type == "custom"
    assert loaded.config.api_base_url is not None
    assert loaded.config.api_base_url.startswith("https://")
    assert loaded.passthrough is False


def test_examples_directory_default_backend(examples: Config) -> None:
    assert examples.proxy.default_backend == "internal-llm"
    for name in EXAMPLE_NAMES:
        assert examples.backends[name].preset is False
    assert examples.backends["mock"].preset is True  # presets stay available beside config/


def test_example_internal_llm(examples: Config) -> None:
    cfg = examples.backends["internal-llm"].config
    assert cfg.api_base_url == "https://internal-llm.company.com/v1"
    assert cfg.key_env_vars == ["INTERNAL_LLM_API_KEY"]
    assert cfg.auth_type is None  # unset: the protocol's own way (Bearer for OpenAI)
    assert list(cfg.models) == ["company-gpt-large"]
    limits = cfg.models["company-gpt-large"].limits
    assert limits.context_window == 32000
    assert limits.max_input_tokens == 24000
    assert limits.max_output_tokens == 8000
    assert limits.requests_per_minute == 100
    assert limits.tokens_per_minute is None
    assert examples.backends["internal-llm"].default_model == "company-gpt-large"


def test_example_openai_specialized(examples: Config) -> None:
    cfg = examples.backends["openai-specialized"].config
    assert cfg.api_base_url == "https://api.openai.com/v1"
    assert cfg.key_env_vars == ["OPENAI_API_KEY"]
    model = cfg.models["gpt-4-specialized"]
    assert model.upstream_model == "gpt-4o"
    assert (model.limits.context_window, model.limits.max_input_tokens, model.limits.max_output_tokens) == (
        8000,
        6000,
        2000,
    )
    assert model.limits.requests_per_minute == 30
    assert model.parameters == {"temperature": 0.3}


def test_example_multi_model(examples: Config) -> None:
    cfg = examples.backends["multi-model"].config
    assert cfg.api_base_url == "https://api.provider.com/v1"
    assert cfg.key_env_vars == ["PROVIDER_API_KEY"]
    assert list(cfg.models) == ["fast-model", "accurate-model", "balanced-model"]
    expected = {
        "fast-model": (4096, 3000, 120, 0.8),
        "accurate-model": (32000, 24000, 30, 0.2),
        "balanced-model": (16000, 12000, 60, 0.5),
    }
    for name, (window, max_in, rpm, temperature) in expected.items():
        model = cfg.models[name]
        assert model.limits.context_window == window
        assert model.limits.max_input_tokens == max_in
        assert model.limits.max_output_tokens is None
        assert model.limits.requests_per_minute == rpm
        assert model.parameters == {"temperature": temperature}
        assert model.upstream_model is None
    assert examples.backends["multi-model"].default_model == "fast-model"  # first model


def test_example_headers(examples: Config) -> None:
    cfg = examples.backends["headers-example"].config
    assert cfg.headers == {"X-Custom-Header": "value", "X-Organization-ID": "org-123"}
    assert cfg.key_env_vars == ["EXAMPLE_API_KEY"]
    assert cfg.models == {}


def test_example_custom_auth(examples: Config) -> None:
    cfg = examples.backends["custom-auth"].config
    assert cfg.auth_type == "custom"
    assert cfg.auth_header == "X-API-Key"
    assert cfg.key_env_vars == ["MY_API_KEY"]
    assert cfg.api_base_url == "https://api.example.com/v1"


def test_example_timeouts(examples: Config) -> None:
    cfg = examples.backends["timeouts-example"].config
    assert cfg.timeout == 60
    assert cfg.max_retries == 3
    assert cfg.retry_delay == 1.0
    # unspecified timeouts keep their defaults
    assert (cfg.connect_timeout, cfg.first_token_timeout, cfg.stream_idle_timeout) == (10, 30, 30)


def test_example_large_context(examples: Config) -> None:
    cfg = examples.backends["large-context"].config
    assert cfg.key_env_vars == ["LARGE_CONTEXT_API_KEY"]
    limits = cfg.models["large-context-model"].limits
    assert (limits.context_window, limits.max_input_tokens, limits.max_output_tokens) == (
        262144,
        200000,
        62144,
    )


# ---- defaults and discovery ----------------------------------------------------------------------


def test_defaults_of_a_minimal_custom_backend(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM)
    cfg = loader.load(tmp_path).backends["mine"].config
    assert cfg.auth_type is None
    assert cfg.auth_header is None
    assert cfg.headers == {}
    assert cfg.key_env_vars == []
    assert (cfg.timeout, cfg.connect_timeout, cfg.first_token_timeout, cfg.stream_idle_timeout) == (
        60,
        10,
        30,
        30,
    )
    assert (cfg.max_retries, cfg.retry_delay) == (2, 1.0)
    assert cfg.passthrough_models is False


def test_trailing_slash_of_base_url_is_dropped(tmp_path: Path) -> None:
    backend(tmp_path, "mine", "backend_type: custom\napi_base_url: http://localhost:8080/v1/\n")
    assert loader.load(tmp_path).backends["mine"].config.api_base_url == "http://localhost:8080/v1"


def test_key_rotation_list(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM + "api_key_env_var: [KEY_A, KEY_B]\n")
    assert loader.load(tmp_path).backends["mine"].config.key_env_vars == ["KEY_A", "KEY_B"]


def test_no_config_dir_gives_presets_only() -> None:
    config = loader.load(None)
    assert "mock" in config.backends
    assert all(b.preset for b in config.backends.values())
    assert config.proxy.default_backend is None


def test_missing_config_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert all(b.preset for b in loader.load(missing).backends.values())
    with pytest.raises(ConfigError) as caught:
        loader.load(missing, required=True)
    assert str(missing) in caught.value.problems[0]


def test_name_equal_to_directory_is_accepted(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM + "name: mine\n")
    assert loader.load(tmp_path).backends["mine"].name == "mine"


# ---- validation errors of SPEC §2.1 --------------------------------------------------------------


def test_context_window_below_max_input_tokens(tmp_path: Path) -> None:
    path = backend(
        tmp_path,
        "mine",
        CUSTOM
        + """\
models:
  m:
    limits: {context_window: 1000, max_input_tokens: 2000}
""",
    )
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: models.m.limits: ")
    assert "max_input_tokens (2000)" in message
    assert "context_window (1000)" in message


def test_max_output_tokens_above_context_window(tmp_path: Path) -> None:
    path = backend(
        tmp_path,
        "mine",
        CUSTOM
        + """\
models:
  m:
    limits: {context_window: 1000, max_output_tokens: 1001}
""",
    )
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: models.m.limits: ")
    assert "max_output_tokens (1001)" in message


def test_limits_equal_to_context_window_are_fine(tmp_path: Path) -> None:
    backend(
        tmp_path,
        "mine",
        CUSTOM + "models:\n  m:\n    limits: {context_window: 10, max_input_tokens: 10, max_output_tokens: 10}\n",
    )
    limits = loader.load(tmp_path).backends["mine"].config.models["m"].limits
    assert (limits.context_window, limits.max_input_tokens, limits.max_output_tokens) == (10, 10, 10)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("context_window", "0", "greater than 0"),
        ("max_input_tokens", "-5", "greater than 0"),
        ("requests_per_minute", "0", "greater than 0"),
        ("tokens_per_minute", "1.5", "integer"),
        ("max_output_tokens", "many", "integer"),
        ("context_window", "[1]", "integer"),
    ],
)
def test_limits_must_be_positive_integers(tmp_path: Path, key: str, value: str, expected: str) -> None:
    path = backend(tmp_path, "mine", CUSTOM + f"models:\n  m:\n    limits:\n      {key}: {value}\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: models.m.limits.{key}: ")
    assert expected in message


@pytest.mark.parametrize("value", ["true", '"32000"', "1.5", "-3"])
def test_limits_reject_booleans_and_strings(tmp_path: Path, value: str) -> None:
    backend(tmp_path, "mine", CUSTOM + f"models:\n  m:\n    limits:\n      context_window: {value}\n")
    assert "models.m.limits.context_window" in one_problem(tmp_path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("timeout", "0"), ("connect_timeout", "-1"), ("max_retries", "-1"), ("max_retries", "11"),
     ("retry_delay", "-0.5")],
)
def test_timeouts_and_retries_out_of_range(tmp_path: Path, key: str, value: str) -> None:
    path = backend(tmp_path, "mine", CUSTOM + f"{key}: {value}\n")
    assert one_problem(tmp_path).startswith(f"{path}: {key}: ")


def test_directory_without_backend_yaml(tmp_path: Path) -> None:
    (tmp_path / "backends" / "empty").mkdir(parents=True)
    backend(tmp_path, "fine", CUSTOM)
    message = one_problem(tmp_path)
    assert str(tmp_path / "backends" / "empty") in message
    assert "missing backend.yaml" in message


def test_stray_file_in_backends(tmp_path: Path) -> None:
    write(tmp_path / "backends" / "backend.yaml", CUSTOM)
    message = one_problem(tmp_path)
    assert str(tmp_path / "backends" / "backend.yaml") in message
    assert "expected a directory" in message


def test_name_differing_from_directory(tmp_path: Path) -> None:
    path = backend(tmp_path, "internal-llm", CUSTOM + "name: internal\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: name: ")
    assert "'internal'" in message
    assert "'internal-llm'" in message


def test_custom_auth_without_auth_header(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "api_key_env_var: MY_API_KEY\nauth_type: custom\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: ")
    assert "auth_header" in message


def test_unknown_auth_type(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "auth_type: basic\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: auth_type: ")
    assert "'bearer'" in message and "'custom'" in message


def test_custom_without_api_base_url(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", "backend_type: custom\napi_key_env_var: K\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: ")
    assert "api_base_url" in message


@pytest.mark.parametrize("url", ["ftp://api.example.com/v1", "api.example.com/v1", "https://"])
def test_bad_url(tmp_path: Path, url: str) -> None:
    path = backend(tmp_path, "mine", f"backend_type: custom\napi_base_url: '{url}'\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: api_base_url: ")
    assert "http://" in message and "https://" in message


def test_missing_backend_type(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", "api_base_url: https://api.example.com/v1\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: backend_type: ")
    assert "custom" in message and "openai" in message


def test_unknown_backend_type_with_did_you_mean(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", "backend_type: opena\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: backend_type: ")
    assert "'opena'" in message
    assert "did you mean 'openai'?" in message


def test_backend_type_custon_suggests_custom(tmp_path: Path) -> None:
    backend(tmp_path, "mine", "backend_type: custon\napi_base_url: https://a.example/v1\n")
    assert "did you mean 'custom'?" in one_problem(tmp_path)


@pytest.mark.parametrize("secret", ["sk-proj-AbC123xyz789SECRET", "Bearer qwerty42", "hunter2 zxcv9"])
def test_api_key_env_var_that_looks_like_a_key_is_not_echoed(tmp_path: Path, secret: str) -> None:
    path = backend(tmp_path, "mine", CUSTOM + f"api_key_env_var: '{secret}'\n")
    with pytest.raises(ConfigError) as caught:
        loader.load(tmp_path)
    assert len(caught.value.problems) == 1
    message = caught.value.problems[0]
    assert message.startswith(f"{path}: api_key_env_var: ")
    assert "NAME of an environment variable" in message
    assert secret not in str(caught.value)
    assert secret.rsplit(maxsplit=1)[-1] not in str(caught.value)


def test_api_key_in_a_rotation_list_is_not_echoed(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    backend(tmp_path, "mine", CUSTOM + f"api_key_env_var: [GOOD_NAME, '{secret}']\n")
    with pytest.raises(ConfigError) as caught:
        loader.load(tmp_path)
    assert "api_key_env_var" in str(caught.value)
    assert secret not in str(caught.value)


def test_header_value_is_not_echoed(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM + "headers:\n  X-Token: 123456789\n")  # a number, not a string
    with pytest.raises(ConfigError) as caught:
        loader.load(tmp_path)
    assert "headers" in str(caught.value)
    assert "123456789" not in str(caught.value)


# ---- unknown keys --------------------------------------------------------------------------------


def test_unknown_top_level_key_with_did_you_mean(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "timout: 30\n")
    assert one_problem(tmp_path) == f"{path}: timout: unknown key (did you mean 'timeout'?)"


def test_unknown_key_without_a_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "zzzz: 1\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: zzzz: unknown key; allowed keys here: ")
    assert "api_base_url" in message and "passthrough_models" in message


def test_unknown_key_inside_a_model(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "models:\n  m:\n    limts: {context_window: 10}\n")
    assert one_problem(tmp_path) == f"{path}: models.m.limts: unknown key (did you mean 'limits'?)"


def test_unknown_key_inside_limits(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "models:\n  m:\n    limits: {max_input_token: 10}\n")
    assert one_problem(tmp_path) == (
        f"{path}: models.m.limits.max_input_token: unknown key (did you mean 'max_input_tokens'?)"
    )


def test_key_path_quotes_model_names_with_dots(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "models:\n  gpt-4.1:\n    limits: {context_window: 0}\n")
    assert one_problem(tmp_path).startswith(f"{path}: models['gpt-4.1'].limits.context_window: ")


def test_unknown_key_inside_pricing(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM + "models:\n  m:\n    pricing: {input_per_milion: 1}\n")
    assert "models.m.pricing.input_per_milion: unknown key (did you mean 'input_per_million'?)" in (
        one_problem(tmp_path)
    )


# ---- several problems, invalid YAML --------------------------------------------------------------


def test_several_errors_in_several_files_are_reported_together(tmp_path: Path) -> None:
    a = backend(tmp_path, "alpha", CUSTOM + "timout: 30\nmodels:\n  m:\n    limits: {context_window: 0}\n")
    b = backend(tmp_path, "beta", "backend_type: custom\nauth_type: custom\napi_base_url: https://x.example\n")
    c = backend(tmp_path, "gamma", "backend_type: opena\n")
    proxy = write(tmp_path / "proxy.yaml", "sever: {}\n")
    found = problems(tmp_path)
    assert len(found) == 5, found
    assert f"{a}: timout: unknown key (did you mean 'timeout'?)" in found
    assert any(p.startswith(f"{a}: models.m.limits.context_window: ") for p in found)
    assert any(p.startswith(f"{b}: ") and "auth_header" in p for p in found)
    assert any(p.startswith(f"{c}: backend_type: ") for p in found)
    assert f"{proxy}: sever: unknown key (did you mean 'server'?)" in found
    # the exception text lists them all
    with pytest.raises(ConfigError, match="5 configuration errors"):
        loader.load(tmp_path)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = backend(tmp_path, "broken", "backend_type: custom\napi_base_url: https://a.example\nmodels: [a, b\n")
    backend(tmp_path, "fine", CUSTOM)
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: not valid YAML (line ")
    # the unclosed flow sequence opened on line 3 is detected at the end of the file (line 4)
    assert "(line 4," in message


def test_invalid_yaml_line_of_a_bad_indent(tmp_path: Path) -> None:
    path = backend(tmp_path, "broken", "backend_type: custom\n  api_base_url: x\nfoo: [\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: not valid YAML (line 2,")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", "- backend_type: custom\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: expected a mapping")
    assert "list" in message


# ---- presets -------------------------------------------------------------------------------------


def test_config_backend_named_like_a_preset_replaces_it(tmp_path: Path) -> None:
    path = backend(
        tmp_path,
        "openai",
        """\
backend_type: custom
api_base_url: http://localhost:9999/v1
models:
  only-model: {}
""",
    )
    replaced = loader.load(tmp_path).backends["openai"]
    assert replaced.preset is False
    assert replaced.source == str(path)
    assert replaced.config.api_base_url == "http://localhost:9999/v1"
    assert list(replaced.config.models) == ["only-model"]  # none of the preset's models
    assert replaced.config.key_env_vars == []  # nor its key variable
    assert replaced.passthrough is False


def test_backend_type_openai_extends_the_preset(tmp_path: Path) -> None:
    backend(
        tmp_path,
        "work-openai",
        """\
backend_type: openai
timeout: 120
models:
  my-finetune:
    upstream_model: ft:gpt-4o:acme
    limits: {context_window: 128000}
  gpt-4o:
    limits: {max_input_tokens: 1000}
""",
    )
    config = loader.load(tmp_path)
    preset = config.backends["openai"]
    extended = config.backends["work-openai"]
    cfg = extended.config
    assert extended.preset is False
    assert extended.root_type == "custom"
    assert extended.protocol == "openai"
    assert cfg.backend_type == "openai"
    assert cfg.api_base_url == preset.config.api_base_url == "https://api.openai.com/v1"
    assert cfg.key_env_vars == ["OPENAI_API_KEY"]
    assert cfg.timeout == 120
    assert preset.config.timeout == 60  # the preset itself is untouched
    assert set(preset.config.models) < set(cfg.models)
    assert "my-finetune" in cfg.models and "my-finetune" not in preset.config.models
    assert cfg.models["my-finetune"].upstream_model == "ft:gpt-4o:acme"
    # a model of the preset is deep-merged: its own limits stay, the file's are added
    assert cfg.models["gpt-4o"].limits.max_input_tokens == 1000
    assert cfg.models["gpt-4o"].limits.context_window == preset.config.models["gpt-4o"].limits.context_window
    assert cfg.default_model == preset.config.default_model


def test_passthrough_default_false_for_custom_inherited_for_presets(tmp_path: Path) -> None:
    backend(tmp_path, "mine", CUSTOM)
    backend(tmp_path, "router", "backend_type: openrouter\n")
    backend(tmp_path, "closed", "backend_type: openai\npassthrough_models: false\n")
    backend(tmp_path, "open", CUSTOM + "passthrough_models: true\n")
    config = loader.load(tmp_path)
    assert config.backends["mine"].passthrough is False
    assert config.backends["mine"].config.passthrough_models is False
    assert config.backends["openrouter"].passthrough is True
    assert config.backends["router"].passthrough is True
    assert config.backends["closed"].passthrough is False
    assert config.backends["open"].passthrough is True


def test_backend_type_mock_is_served_by_the_mock(tmp_path: Path) -> None:
    backend(tmp_path, "fake", "backend_type: mock\n")
    fake = loader.load(tmp_path).backends["fake"]
    assert fake.root_type == "mock"
    assert fake.protocol == "mock"


def test_presets_all_load() -> None:
    config = loader.load(None)
    for name in ("openai", "openrouter", "ollama", "mock"):
        assert config.backends[name].preset is True
        assert config.backends[name].source.endswith(f"{name}.yaml")
    assert config.backends["ollama"].config.key_env_vars == []


def test_default_model_must_be_listed_unless_passthrough(tmp_path: Path) -> None:
    path = backend(tmp_path, "mine", CUSTOM + "default_model: other\nmodels:\n  m: {}\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: ")
    assert "default_model 'other'" in message


# ---- proxy.yaml ----------------------------------------------------------------------------------


def test_proxy_yaml_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "proxy.yaml", "default_backnd: mock\n")
    assert one_problem(tmp_path) == f"{path}: default_backnd: unknown key (did you mean 'default_backend'?)"


def test_proxy_yaml_unknown_key_in_server(tmp_path: Path) -> None:
    path = write(tmp_path / "proxy.yaml", "server:\n  prot: 9000\n")
    assert one_problem(tmp_path) == f"{path}: server.prot: unknown key (did you mean 'port'?)"


def test_proxy_yaml_unknown_default_backend(tmp_path: Path) -> None:
    backend(tmp_path, "internal-llm", CUSTOM)
    path = write(tmp_path / "proxy.yaml", "default_backend: internl-llm:company-gpt-large\n")
    message = one_problem(tmp_path)
    assert message.startswith(f"{path}: default_backend: ")
    assert "'internl-llm'" in message
    assert "did you mean 'internal-llm'?" in message


def test_proxy_yaml_default_backend_with_model(tmp_path: Path) -> None:
    backend(tmp_path, "internal-llm", CUSTOM)
    write(tmp_path / "proxy.yaml", "default_backend: internal-llm:company-gpt-large\nserver: {port: 9000}\n")
    proxy = loader.load(tmp_path).proxy
    assert proxy.default_backend == "internal-llm:company-gpt-large"
    assert proxy.server.port == 9000
    assert proxy.server.host == "127.0.0.1"


# ---- expand_env ----------------------------------------------------------------------------------


def test_expand_env_set_variables() -> None:
    assert loader.expand_env("Bearer ${TOKEN}", {"TOKEN": "abc"}) == ("Bearer abc", [])
    assert loader.expand_env("${A}-${B}", {"A": "1", "B": "2"}) == ("1-2", [])
    assert loader.expand_env("plain", {}) == ("plain", [])


def test_expand_env_unset_and_empty_variables() -> None:
    assert loader.expand_env("org-${ORG}", {}) == ("org-", ["ORG"])
    assert loader.expand_env("${A}${B}", {"A": "", "B": "x"}) == ("x", ["A"])


def test_expand_env_leaves_other_dollar_forms_alone() -> None:
    assert loader.expand_env("$HOME ${1BAD} ${}", {"HOME": "/root"}) == ("$HOME ${1BAD} ${}", [])
