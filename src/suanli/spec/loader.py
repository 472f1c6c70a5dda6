"""Read YAML or JSON documents into Pydantic models, turning every failure into a SpecError with file, line,
field path, the value given and what is accepted."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from suanli.errors import Problem, SpecError

M = TypeVar("M", bound=BaseModel)
PathKey = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # a spec bigger than this is a mistake, not a spec


def read_document(text: str, source: str | None = None, kind: str = "spec") -> tuple[Any, dict[PathKey, int]]:
    """Parse YAML (JSON is accepted as YAML) into plain data plus a map from field path to 1-based line."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise SpecError([Problem(f"document is larger than {MAX_DOCUMENT_BYTES // 1024 // 1024} MiB")], source, kind)
    if source and source.endswith(".json"):
        return _read_json(text, source, kind)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Problem("document is empty; expected a mapping of fields")], source, kind)
        lines: dict[PathKey, int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems)
        if problems:
            raise SpecError(problems, source, kind)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"not valid YAML: {exc.problem or exc.context}"
        raise SpecError([Problem(msg, line=line)], source, kind) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"not valid YAML: {exc}")], source, kind) from None
    except RecursionError:
        raise SpecError([Problem("document is nested too deeply")], source, kind) from None
    except SpecError as exc:
        raise SpecError(exc.problems, source, kind) from None
    finally:
        loader.dispose()
    return data, lines


MAX_NODES = 100_000  # a spec has hundreds of nodes; far more is a mistake or an attack (an alias bomb)


def _walk(
    node: yaml.Node,
    path: PathKey,
    lines: dict[PathKey, int],
    problems: list[Problem],
    seen_nodes: set[int] | None = None,
) -> None:
    """Line numbers by field path, and duplicate keys. Each node is visited once: an alias to a node already
    walked (YAML's `*ref`) is not expanded again, so a document of nested aliases cannot blow up."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if len(seen_nodes) > MAX_NODES:
        raise SpecError([Problem(f"document has more than {MAX_NODES:,} nodes")])
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key == "<<":  # merge key: its fields are checked by the model like any other
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(f"key {key!r} appears twice (first on line {seen[key]})", _dotted((*path, key)), line)
                )
            seen[key] = line
            _walk(value_node, (*path, key), lines, problems, seen_nodes)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, problems, seen_nodes)


def _read_json(text: str, source: str, kind: str, with_lines: bool = True) -> tuple[Any, dict[PathKey, int]]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise SpecError([Problem(f"key {k!r} appears twice in one object")], source, kind)
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise SpecError(
            [Problem(f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)], source, kind
        ) from None
    except RecursionError:
        raise SpecError([Problem("document is nested too deeply")], source, kind) from None
    lines: dict[PathKey, int] = {}
    if not with_lines:
        return data, lines
    try:  # JSON is YAML: reuse the YAML node marks for line numbers where the parser agrees
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _walk(node, (), lines, [])
    except (yaml.YAMLError, RecursionError, SpecError):
        pass
    return data, lines


def parse_model(
    model: type[M], data: Any, source: str | None = None, lines: dict[PathKey, int] | None = None, kind: str = "spec"
) -> M:
    """Validate plain data against a model; a failure lists every problem with its line and what is accepted."""
    if not isinstance(data, dict):
        raise SpecError(
            [Problem(f"expected a mapping of fields at the top level, got {type(data).__name__}", line=1)], source, kind
        )
    try:
        return model.model_validate(data)
    except RecursionError:
        raise SpecError([Problem("document is nested too deeply")], source, kind) from None
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, model, lines or {}), source, kind) from None


def parse_json_model(model: type[M], text: str, source: str | None = None, kind: str = "spec") -> M:
    """parse_model for JSON text, fast: line numbers are worked out only when there is an error to report."""
    data, _ = _read_json(text, source or "request.json", kind, with_lines=False)
    try:
        return parse_model(model, data, source, {}, kind)
    except SpecError:
        data, lines = _read_json(text, source or "request.json", kind)
        return parse_model(model, data, source, lines, kind)


def load_model(model: type[M], path: str | Path, kind: str = "spec") -> M:
    """Read a YAML or JSON file into a model."""
    p = Path(path)
    source = str(path)
    try:
        if p.stat().st_size > MAX_DOCUMENT_BYTES:
            raise SpecError([Problem(f"file is larger than {MAX_DOCUMENT_BYTES // 1024 // 1024} MiB")], source, kind)
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("file not found")], source, kind) from None
    except IsADirectoryError:
        raise SpecError([Problem("is a directory; expected a YAML or JSON file")], source, kind) from None
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(f"not UTF-8 text (byte {exc.start})")], source, kind) from None
    data, lines = read_document(text, source, kind)
    return parse_model(model, data, source, lines, kind)


def problems_from_validation(exc: ValidationError, model: type[BaseModel], lines: dict[PathKey, int]) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # Pydantic adds the union member's tag or function name to loc; drop those for the user's path
        clean = tuple(
            part for part in loc if not (isinstance(part, str) and ("[" in part or part.startswith("function-")))
        )
        field = _dotted(clean) or None
        line = _nearest_line(clean, lines)
        etype = err["type"]
        given = err.get("input")
        accepted = None
        if etype == "extra_forbidden":
            parent = _model_at(model, clean[:-1])
            known = sorted(parent.model_fields) if parent else []
            msg = f"unknown key {clean[-1]!r}"
            near = difflib.get_close_matches(str(clean[-1]), known, n=1, cutoff=0.7)
            if near:
                msg += f" (did you mean {near[0]!r}?)"
            accepted = ", ".join(known) if known else None
            given = None
        elif etype == "string_pattern_mismatch" and "a-z0-9" in str(err.get("ctx", {}).get("pattern", "")):
            msg = "not a valid id"
            accepted = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. 'zz-ai'"
        elif etype == "missing":
            msg = "required field is missing"
            given = None
        else:
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if isinstance(given, dict):
                given = None  # a whole mapping is noise; the field path says where
        problems.append(Problem(msg, field, line, given, accepted))
    return problems


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk model field annotations along loc to the model that holds the last key."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        f = current.model_fields.get(part)
        if f is None:
            return None
        current = _inner_model(f.annotation, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, typing)
        if found is not None:
            return found
    return None


def _nearest_line(loc: PathKey, lines: dict[PathKey, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _dotted(loc: PathKey) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
