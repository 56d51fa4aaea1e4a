"""Gemini tools both ways: functionDeclarations and toolConfig from a client as canonical tools and a
tool choice (other tools, such as googleSearch, kept aside), and canonical ones as Gemini's; Gemini's
OpenAPI Schema as JSON Schema."""

from __future__ import annotations

from typing import Any

from lip.core.model import Tool, ToolChoice
from lip.protocols.gemini.common import camel_keys, fail, get

# ---- client → canonical ------------------------------------------------------------------------


def parse_tools(raw: Any) -> tuple[tuple[Tool, ...], list[Any]]:
    """Function declarations as canonical tools; other tools (googleSearch, codeExecution, ...) kept aside."""
    if raw is None:
        return (), []
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise fail("tools", "an array of Tool objects")
    tools: list[Tool] = []
    others: list[Any] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise fail(f"tools[{i}]", "a Tool object")
        declarations = get(tool, "functionDeclarations")
        rest = {k: v for k, v in tool.items() if k not in ("functionDeclarations", "function_declarations")}
        if rest:
            others.append(rest)
        if declarations is None:
            continue
        if not isinstance(declarations, list):
            raise fail(f"tools[{i}].functionDeclarations", "an array of FunctionDeclaration objects")
        for j, fn in enumerate(declarations):
            where = f"tools[{i}].functionDeclarations[{j}]"
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                raise fail(f"{where}.name", "the function's name")
            description = fn.get("description")
            if description is not None and not isinstance(description, str):
                raise fail(f"{where}.description", "a string")
            schema = get(fn, "parametersJsonSchema")
            if schema is None:
                openapi = fn.get("parameters")
                if openapi is not None and not isinstance(openapi, dict):
                    raise fail(f"{where}.parameters", "a Schema object")
                schema = schema_to_json(openapi) if openapi is not None else None
            elif not isinstance(schema, dict):
                raise fail(f"{where}.parametersJsonSchema", "a JSON schema object")
            tools.append(Tool(name=name, description=description, parameters=schema))
    return tuple(tools), others


def schema_to_json(schema: Any) -> Any:
    """Gemini's OpenAPI Schema (``"type": "OBJECT"``, ``nullable``) as JSON Schema; other keys kept."""
    if isinstance(schema, list):
        return [schema_to_json(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "nullable":
            continue
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: schema_to_json(s) for name, s in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties", "prefixItems"):
            out[key] = schema_to_json(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def parse_tool_config(raw: Any) -> tuple[ToolChoice | None, dict[str, Any]]:
    """functionCallingConfig as a ToolChoice; the whole toolConfig is kept when it says more than that."""
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        raise fail("toolConfig", "a ToolConfig object")
    config = get(raw, "functionCallingConfig")
    extra = {k: v for k, v in raw.items() if k not in ("functionCallingConfig", "function_calling_config")}
    if config is None:
        return None, extra
    if not isinstance(config, dict):
        raise fail("toolConfig.functionCallingConfig", "an object")
    mode = config.get("mode", "AUTO")
    names = get(config, "allowedFunctionNames")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise fail("toolConfig.functionCallingConfig.allowedFunctionNames", "an array of function names")
    mode = mode.upper() if isinstance(mode, str) else mode
    if mode in ("AUTO", "MODE_UNSPECIFIED"):
        choice = ToolChoice("auto")
    elif mode == "NONE":
        choice = ToolChoice("none")
    elif mode == "ANY":
        choice = ToolChoice("tool", names[0]) if names and len(names) == 1 else ToolChoice("required")
    elif mode == "VALIDATED":
        choice = ToolChoice("auto")
    else:
        raise fail("toolConfig.functionCallingConfig.mode", "AUTO, ANY, NONE or VALIDATED")
    lossy = mode == "VALIDATED" or (names and (mode != "ANY" or len(names) > 1))
    return choice, (camel_keys(raw) if lossy else extra)


# ---- canonical → upstream ----------------------------------------------------------------------


def tool_to_wire(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    if t.parameters is not None:
        fn["parametersJsonSchema"] = t.parameters
    return fn


def tool_choice_to_wire(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool" and choice.name:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"none": "NONE", "required": "ANY"}.get(choice.mode, "AUTO")}
