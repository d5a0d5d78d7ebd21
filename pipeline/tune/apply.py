"""Writing a study's best params into params.yaml, keeping its comments, order and layout.

Only the tuned keys' lines change: an existing key keeps its place and its comment; a key the
file does not have yet (e.g. gan.sigma, which is unset while the rule of thumb applies) goes
after the last plain value of its section.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamsError
from pipeline.utils import atomic_write


def _yaml(text: str):
    """A round-trip YAML with the file's own indentation (mapping, block sequences)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _, indent, offset = load_yaml_guess_indent(text)
    indent, offset = indent or 2, offset or 0
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=indent, sequence=indent + offset, offset=offset)
    y.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def _value(v: Any) -> Any:
    return float(f"{v:.6g}") if isinstance(v, float) else v


def apply_values(path: Path, experiment: str, values: dict[str, Any]) -> None:
    """Set experiments.<experiment>.<dotted key> = value in the YAML file at `path`, checking
    that the result is still valid params."""
    from ruamel.yaml.comments import CommentedMap

    from pipeline.params import validate

    text = path.read_text()
    y = _yaml(text)
    doc = y.load(text)
    try:
        section = doc["experiments"][experiment]
    except (KeyError, TypeError):
        raise ParamsError(f"{path}: no experiments.{experiment} to write the tuned params into") from None
    for key, value in values.items():
        node = section
        *parents, leaf = key.split(".")
        for part in parents:
            if part not in node:
                node[part] = CommentedMap()
            node = node[part]
        if leaf in node:
            node[leaf] = _value(value)
        else:
            plain = [i for i, v in enumerate(node.values()) if not isinstance(v, dict)]
            node.insert(plain[-1] + 1 if plain else len(node), leaf, _value(value))
    buf = io.StringIO()
    y.dump(doc, buf)
    text = buf.getvalue()
    validate(yaml.safe_load(text))
    atomic_write(path, lambda tmp: tmp.write_text(text))
