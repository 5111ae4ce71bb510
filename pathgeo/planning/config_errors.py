"""A config's errors: `ConfigError` names the key to fix; the schema's violations come all at once, in the config's
order, with the known key a misspelt one is closest to."""

from __future__ import annotations

import difflib
import re
from typing import Any

import jsonschema

from pathgeo.planning.config_files import KeyPath, dotted
from pathgeo.planning.schema import config_schema


class ConfigError(ValueError):
    """A config value that is well-typed but wrong in context. The message starts with the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


def schema_errors(config: dict[str, Any], schema: dict[str, Any] | None = None) -> list[ConfigError]:
    """Every violation of the schema (by default the config's, `config_schema()`), one ConfigError each naming its
    key, in the config's order. An unknown key gets the known key closest to it, or the keys known there."""
    schema = config_schema() if schema is None else schema
    validator = jsonschema.validators.validator_for(schema)(schema)
    found = [
        violation
        for error in validator.iter_errors(config)
        for violation in _violations(jsonschema.exceptions.best_match([error]))
    ]
    return [error for _, error in sorted(found, key=lambda pair: _document_order(config, pair[0]))]


def schema_error(config: dict[str, Any], schema: dict[str, Any] | None = None) -> ConfigError | None:
    """The schema's violations (`schema_errors`) as one ConfigError, one line each, or None."""
    errors = schema_errors(config, schema)
    if len(errors) > 1:
        return ConfigErrors(errors)
    return errors[0] if errors else None


class ConfigErrors(ConfigError):
    """Several ConfigErrors at once, one line each; `key` is the first's."""

    def __init__(self, errors: list[ConfigError]):
        ValueError.__init__(self, "\n".join(map(str, errors)))
        self.key = errors[0].key
        self.errors = tuple(errors)


def _violations(error: jsonschema.exceptions.ValidationError) -> list[tuple[KeyPath, ConfigError]]:
    """One schema error as ConfigErrors with their places: an error of unknown keys is one per key."""
    path: KeyPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        unknown = [key for key in error.instance if key not in known and not any(re.search(p, key) for p in patterns)]
        return [
            ((*path, key), ConfigError(dotted((*path, key)), "is not a known key" + _suggestion(key, known)))
            for key in unknown
        ]
    if error.validator == "required":
        named = re.search(r"'([^']+)' is a required property", error.message)
        missing = (*path, named.group(1)) if named else path
        return [(missing, ConfigError(dotted(missing), "is missing"))]
    if error.validator in ("anyOf", "oneOf"):
        # Say what each alternative expects (the valid values of an enum, a registry name or a plug-in), rather
        # than jsonschema's "is not valid under any of the given schemas".
        expected = [_expected(alternative) for alternative in error.validator_value]
        return [(path, ConfigError(dotted(path), f"{error.instance!r} is not " + ", nor ".join(expected)))]
    message = error.message
    if error.validator == "type" and isinstance(error.instance, str) and _number(error.instance):
        message += "; YAML read it as text: write a number without quotes and without `_` (0.001, 1e-3)"
    return [(path, ConfigError(dotted(path), message))]


def _suggestion(key: str, known: list[str]) -> str:
    """The known key a misspelt one is closest to, else the keys known at its place."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; the keys known here are {', '.join(known)}" if known else ""


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _document_order(config: Any, path: KeyPath) -> tuple[int, ...]:
    """Where `path` comes in the config read top to bottom; a key the config lacks comes after its siblings."""
    order, node = [], config
    for part in path:
        if isinstance(node, dict) and part in node:
            order.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            order.append(part)
            node = node[part]
        else:
            order.append(len(node) if isinstance(node, (dict, list)) else 0)
            break
    return tuple(order)


def _expected(schema: dict[str, Any]) -> str:
    """What a value valid under `schema` is, in words."""
    if "enum" in schema:
        return f"one of {schema['enum']}"
    if "const" in schema:
        return repr(schema["const"])
    if "description" in schema:
        return schema["description"]
    kind = schema.get("type")
    words = {
        "null": "null",
        "boolean": "true or false",
        "integer": "an integer",
        "array": "a list",
        "object": "a mapping",
    }
    return words.get(kind, f"a {kind}" if kind else "valid here")
