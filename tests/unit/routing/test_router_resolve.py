"""Router.resolve through lip.app.build_runtime: which backend and model a selector reaches (SPEC §3)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from lip.app import Settings, build_runtime
from lip.core.errors import BackendUnavailable, ConfigError, InvalidRequest, NotFound
from lip.routing.router import Router
from lip.routing.selector import Selector

KEY = "sk-internal-0123456789-SECRET"

INTERNAL = """\
backend_type: custom
api_base_url: https://internal-llm.company.com/v1
api_key_env_var: INTERNAL_LLM_API_KEY
models:
  company-gpt-large:
    limits: {context_window: 32000, max_input_tokens: 24000, max_output_tokens: 8000}
  company-gpt-small: {}
"""

MULTI = """\
backend_type: custom
api_base_url: https://api.provider.com/v1
api_key_env_var: PROVIDER_API_KEY
models:
  fast-model:
    parameters: {temperature: 0.8}
  shared-model: {}
"""

SPECIALIZED = """\
backend_type: custom
api_base_url: https://api.openai.com/v1
api_key_env_var: OPENAI_API_KEY
models:
  gpt-4-specialized:
    upstream_model: gpt-4o
    limits: {context_window: 8000}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def make(
    tmp_path: Path,
    backends: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    proxy: str | None = None,
    default_backend: str | None = None,
) -> Router:
    for name, text in backends.items():
        write(tmp_path / "backends" / name / "backend.yaml", text)
    if proxy is not None:
        write(tmp_path / "proxy.yaml", proxy)
    settings = Settings(
        config_dir=tmp_path,
        default_backend=default_backend,
        environ=dict(environ or {}),
    )
    return build_runtime(settings).router


@pytest.fixture
def two(tmp_path: Path) -> Router:
    """internal-llm (default, via proxy.yaml) and multi-model, both with keys."""
    return make(
        tmp_path,
        {"internal-llm": INTERNAL, "multi-model": MULTI},
        {"INTERNAL_LLM_API_KEY": KEY, "PROVIDER_API_KEY": "pk-provider-SECRET"},
        proxy="default_backend: internal-llm\n",
    )


# ---- explicit and bare selectors -----------------------------------------------------------------


def test_explicit_backend_and_model(two: Router) -> None:
    route = two.resolve("multi-model:fast-model")
    assert route.runtime.name == "multi-model"
    assert route.model == "fast-model"
    assert route.upstream_model == "fast-model"
    assert route.config is not None
    assert route.config.parameters == {"temperature": 0.8}
    assert route.label == "multi-model:fast-model"
    assert route.runtime.connector is not None


def test_explicit_backend_without_model_uses_its_default_model(two: Router) -> None:
    route = two.resolve("internal-llm:")
    assert (route.runtime.name, route.model) == ("internal-llm", "company-gpt-large")


def test_bare_model_on_the_default_backend(two: Router) -> None:
    route = two.resolve("company-gpt-small")
    assert (route.runtime.name, route.model) == ("internal-llm", "company-gpt-small")


def test_empty_model_is_the_default_route(two: Router) -> None:
    route = two.resolve("")
    assert (route.runtime.name, route.model) == ("internal-llm", "company-gpt-large")
    assert route.config is not None and route.config.limits.max_input_tokens == 24000
    assert two.resolve("   ").label == "internal-llm:company-gpt-large"


def test_bare_model_listed_by_exactly_one_other_backend(two: Router) -> None:
    route = two.resolve("fast-model")
    assert (route.runtime.name, route.model) == ("multi-model", "fast-model")


def test_bare_model_listed_only_by_an_unavailable_preset(two: Router) -> None:
    # gpt-4o is listed by the openai preset, whose OPENAI_API_KEY is not in the environment
    with pytest.raises(BackendUnavailable) as caught:
        two.resolve("gpt-4o")
    assert caught.value.status == 503
    assert "'openai'" in caught.value.message
    assert "OPENAI_API_KEY" in caught.value.message


def test_model_name_with_a_colon_listed_by_a_backend(tmp_path: Path) -> None:
    local = "backend_type: custom\napi_base_url: http://localhost:11434/v1\nmodels:\n  llama3:8b: {}\n"
    router = make(tmp_path, {"local": local, "internal-llm": INTERNAL}, {"INTERNAL_LLM_API_KEY": KEY},
                  proxy="default_backend: internal-llm\n")
    route = router.resolve("llama3:8b")  # 'llama3' is no backend: the whole text is a listed model
    assert (route.runtime.name, route.model) == ("local", "llama3:8b")


def test_ambiguous_model_listed_by_two_ready_backends(tmp_path: Path) -> None:
    other = MULTI.replace("PROVIDER_API_KEY", "OTHER_API_KEY").replace("api.provider.com", "other.example")
    router = make(
        tmp_path,
        {"internal-llm": INTERNAL, "multi-model": MULTI, "other": other},
        {"INTERNAL_LLM_API_KEY": KEY, "PROVIDER_API_KEY": "p", "OTHER_API_KEY": "o"},
        proxy="default_backend: internal-llm\n",
    )
    with pytest.raises(InvalidRequest) as caught:
        router.resolve("shared-model")
    error = caught.value
    assert error.code == "ambiguous_model"
    assert error.status == 400
    assert error.param == "model"
    assert "multi-model" in error.message and "other" in error.message
    # naming the backend settles it
    assert router.resolve("other:shared-model").runtime.name == "other"
    assert router.resolve("multi-model:shared-model").runtime.name == "multi-model"


def test_model_listed_by_a_ready_and_an_unavailable_backend_is_not_ambiguous(tmp_path: Path) -> None:
    other = MULTI.replace("PROVIDER_API_KEY", "OTHER_API_KEY")
    router = make(
        tmp_path,
        {"internal-llm": INTERNAL, "multi-model": MULTI, "other": other},
        {"INTERNAL_LLM_API_KEY": KEY, "PROVIDER_API_KEY": "p"},  # OTHER_API_KEY unset
        proxy="default_backend: internal-llm\n",
    )
    assert router.resolve("shared-model").runtime.name == "multi-model"


def test_passthrough_default_backend_takes_any_bare_model(tmp_path: Path) -> None:
    router = make(tmp_path, {}, {}, default_backend="mock")
    route = router.resolve("some-unlisted-model")
    assert (route.runtime.name, route.model, route.upstream_model) == (
        "mock",
        "some-unlisted-model",
        "some-unlisted-model",
    )
    assert route.config is None  # not listed: no per-model limits


# ---- errors --------------------------------------------------------------------------------------


def test_unknown_backend_with_did_you_mean(two: Router) -> None:
    with pytest.raises(NotFound) as caught:
        two.resolve("internl-llm:company-gpt-large")
    error = caught.value
    assert error.status == 404
    assert error.param == "model"
    assert "Unknown backend 'internl-llm'" in error.message
    assert "did you mean 'internal-llm'?" in error.message
    assert "multi-model" in error.message  # lists the backends


def test_unknown_model_on_a_non_passthrough_backend_lists_its_models(two: Router) -> None:
    with pytest.raises(NotFound) as caught:
        two.resolve("internal-llm:company-gpt-larg")
    message = caught.value.message
    assert "'company-gpt-larg'" in message
    assert "did you mean 'company-gpt-large'?" in message
    assert "company-gpt-large, company-gpt-small" in message


def test_unknown_bare_model_is_not_found(two: Router) -> None:
    with pytest.raises(NotFound) as caught:
        two.resolve("no-such-model-anywhere")
    assert "'no-such-model-anywhere'" in caught.value.message
    assert "'internal-llm'" in caught.value.message


def test_passthrough_preset_accepts_unlisted_models(tmp_path: Path) -> None:
    router = make(tmp_path, {}, {"OPENROUTER_API_KEY": "or-key"})
    route = router.resolve("openrouter:meta-llama/llama-3:free")
    assert (route.runtime.name, route.model, route.upstream_model) == (
        "openrouter",
        "meta-llama/llama-3:free",
        "meta-llama/llama-3:free",
    )
    assert route.config is None


@pytest.mark.parametrize("environ", [{}, {"INTERNAL_LLM_API_KEY": ""}])
def test_backend_whose_key_variable_is_unset_is_unavailable(tmp_path: Path, environ: dict[str, str]) -> None:
    secrets = {"PROVIDER_API_KEY": "pk-provider-VALUE-SECRET", "UNRELATED": "unrelated-VALUE"}
    router = make(tmp_path, {"internal-llm": INTERNAL, "multi-model": MULTI}, {**environ, **secrets},
                  proxy="default_backend: internal-llm\n")
    runtime = router.runtimes["internal-llm"]
    assert runtime.connector is None
    assert runtime.unavailable is not None and "INTERNAL_LLM_API_KEY" in runtime.unavailable
    for text in ("internal-llm:company-gpt-large", "company-gpt-large", ""):
        with pytest.raises(BackendUnavailable) as caught:
            router.resolve(text)
        error = caught.value
        assert error.status == 503
        assert error.code == "backend_unavailable"
        assert "internal-llm" in error.message
        assert "INTERNAL_LLM_API_KEY" in error.message
        for value in secrets.values():
            assert value not in error.message
    # the other backend is unaffected
    assert router.resolve("multi-model:fast-model").runtime.name == "multi-model"
    assert {r.runtime.name for r in router.routable()} >= {"multi-model", "mock"}
    assert "internal-llm" not in {r.runtime.name for r in router.routable()}


def test_header_with_unset_env_reference_makes_the_backend_unavailable(tmp_path: Path) -> None:
    with_header = INTERNAL + "headers:\n  X-Organization-ID: ${ORG_ID}\n  X-Static: value\n"
    router = make(tmp_path, {"internal-llm": with_header}, {"INTERNAL_LLM_API_KEY": KEY})
    with pytest.raises(BackendUnavailable) as caught:
        router.resolve("internal-llm:company-gpt-large")
    assert "ORG_ID" in caught.value.message
    assert "INTERNAL_LLM_API_KEY" not in caught.value.message  # that one is set
    assert KEY not in caught.value.message


def test_header_with_set_env_reference_is_ready(tmp_path: Path) -> None:
    with_header = INTERNAL + "headers:\n  X-Organization-ID: ${ORG_ID}\n"
    router = make(tmp_path, {"internal-llm": with_header}, {"INTERNAL_LLM_API_KEY": KEY, "ORG_ID": "org-1"})
    assert router.runtimes["internal-llm"].unavailable is None
    assert router.resolve("company-gpt-large").runtime.name == "internal-llm"


def test_backend_without_key_variable_needs_no_environment(tmp_path: Path) -> None:
    local = "backend_type: custom\napi_base_url: http://localhost:8080/v1\nmodels:\n  local-model: {}\n"
    router = make(tmp_path, {"local": local}, {})
    assert router.runtimes["local"].unavailable is None
    assert router.resolve("local-model").runtime.name == "local"


# ---- the default route ---------------------------------------------------------------------------


def test_default_precedence_explicit_beats_proxy_yaml(tmp_path: Path) -> None:
    router = make(tmp_path, {"internal-llm": INTERNAL, "multi-model": MULTI}, {},
                  proxy="default_backend: internal-llm\n", default_backend="multi-model:fast-model")
    assert router.default == Selector("multi-model", "fast-model")


def test_default_precedence_proxy_yaml_beats_the_one_backend(tmp_path: Path) -> None:
    router = make(tmp_path, {"internal-llm": INTERNAL}, {}, proxy="default_backend: openrouter\n")
    assert router.default == Selector("openrouter", None)


def test_default_precedence_the_one_backend_in_config(tmp_path: Path) -> None:
    router = make(tmp_path, {"internal-llm": INTERNAL}, {})
    assert router.default == Selector("internal-llm", None)


def test_default_precedence_mock_when_several_backends(tmp_path: Path) -> None:
    router = make(tmp_path, {"internal-llm": INTERNAL, "multi-model": MULTI}, {})
    assert router.default == Selector("mock", None)


def test_default_precedence_mock_without_config(tmp_path: Path) -> None:
    router = make(tmp_path, {}, {})
    assert router.default == Selector("mock", None)
    route = router.resolve("")
    assert (route.runtime.name, route.model) == ("mock", "mock-model")


def test_default_with_a_model(tmp_path: Path) -> None:
    router = make(tmp_path, {"internal-llm": INTERNAL}, {"INTERNAL_LLM_API_KEY": KEY},
                  default_backend="internal-llm:company-gpt-small")
    assert router.resolve("").label == "internal-llm:company-gpt-small"


def test_unknown_explicit_default_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make(tmp_path, {"internal-llm": INTERNAL}, {}, default_backend="internl-llm")
    assert "'internl-llm'" in str(caught.value)


# ---- upstream model ------------------------------------------------------------------------------


def test_upstream_model_mapping(tmp_path: Path) -> None:
    router = make(tmp_path, {"openai-specialized": SPECIALIZED}, {"OPENAI_API_KEY": "sk-openai"})
    route = router.resolve("gpt-4-specialized")
    assert route.runtime.name == "openai-specialized"
    assert route.model == "gpt-4-specialized"
    assert route.upstream_model == "gpt-4o"
    assert route.label == "openai-specialized:gpt-4-specialized"
    # routable() reports the same mapping
    routes = {r.label: r.upstream_model for r in router.routable()}
    assert routes["openai-specialized:gpt-4-specialized"] == "gpt-4o"
    # the preset's own gpt-4o keeps its name
    assert router.resolve("openai:gpt-4o").upstream_model == "gpt-4o"
