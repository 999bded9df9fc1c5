"""Load ``campaigns/*.yaml`` into a :class:`~dispatcher.core.campaign.Campaign`.

Every mistake is reported at the line and column of the YAML node it is
about: pydantic's error location (``("audience", "where")``) is walked down
the composed YAML node tree, so ``campaigns/spring.yaml:12:3: unknown key
'subjet' (did you mean 'subject'?)`` points at the key itself.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dispatcher.core import segment
from dispatcher.core.campaign import Campaign
from dispatcher.errors import CampaignError

_MESSAGES = {
    "missing": "missing required key {key!r}",
    "string_type": "{key!r} must be a text value",
    "list_type": "{key!r} must be a list",
    "dict_type": "{key!r} must be a mapping of keys to values",
    "model_type": "{key!r} must be a mapping of keys to values",
    "bool_type": "{key!r} must be true or false",
    "bool_parsing": "{key!r} must be true or false",
}


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise CampaignError("not a campaign: values nested too deeply", path=path) from None
    except yaml.YAMLError as exc:
        # The context mark (where the unclosed quote or key began) is where the fix goes.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise CampaignError(
            f"not valid YAML: {problem}" + (f" ({context})" if context else ""), path=path,
            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
        ) from exc


# A campaign is a page of settings; more values than this after expanding YAML aliases
# is an "alias bomb" (ten lines, millions of values) that would stall every send.
MAX_VALUES = 100_000


def _check_tree(tree: yaml.Node, path: str) -> None:
    """Duplicate keys (YAML keeps the last one silently) and alias bombs, at their line."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:  # an alias is the same node object again
            return sizes[id(node)]
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        first = seen[key.value].start_mark.line + 1
                        raise CampaignError(f"duplicate key {key.value!r} (first at line "
                                            f"{first}; only one of them would be used)",
                                            path=path, line=key.start_mark.line + 1,
                                            column=key.start_mark.column + 1)
                    seen[key.value] = key
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        sizes[id(node)] = total
        if total > MAX_VALUES:
            raise CampaignError(f"more than {MAX_VALUES:,} values once YAML aliases are "
                                "expanded: too big for a campaign", path=path,
                                line=node.start_mark.line + 1, column=node.start_mark.column + 1)
        return total

    size(tree)


def _child(node: yaml.Node, part: str | int, *, key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == part:
                return k if key else v  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _node_at(root: yaml.Node, loc: tuple[str | int, ...], *, key: bool = False) -> yaml.Node:
    """The deepest YAML node on ``loc`` (the key node itself when ``key``)."""
    node = root
    for i, part in enumerate(loc):
        found = _child(node, part, key=key and i == len(loc) - 1)
        if found is None:
            break
        node = found
    return node


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model whose keys are allowed at ``loc`` (for "did you mean")."""
    model: type[BaseModel] | None = Campaign
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items()
                      if part in (n, f.alias)), None)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _describe(error: ErrorDetails) -> str:
    loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
    key = str(next((p for p in reversed(loc) if isinstance(p, str)), "value"))
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        close = difflib.get_close_matches(key, _keys(model), n=1) if model else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind in _MESSAGES:
        return _MESSAGES[kind].format(key=key)
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    dotted = ".".join(str(p) for p in loc)
    return f"{dotted}: {message}" if dotted else message


def _filter_position(node: yaml.ScalarNode, column: int) -> tuple[int, int]:
    """Point into a one-line ``where:`` value at the filter's own column."""
    line = node.start_mark.line + 1
    if node.start_mark.line != node.end_mark.line:
        return line, column
    try:
        segment.parse(node.value)
    except segment.SegmentError as exc:
        if exc.column:
            quote = 1 if node.style in ("'", '"') else 0
            return line, column + quote + exc.column - 1
    return line, column


def _check_templates(campaign: Campaign, root: Path, path: str, tree: yaml.Node) -> None:
    refs: list[tuple[tuple[str | int, ...], Any]] = [(("template",), campaign.template)]
    if campaign.ab_test:
        refs += [(("ab_test", "variants", i, "template"), v.template)
                 for i, v in enumerate(campaign.ab_test.variants) if v.template]
    for loc, ref in refs:
        for kind in ("html", "text"):
            name = getattr(ref, kind)
            if name and not (root / name).is_file():
                node = _node_at(tree, (*loc, kind))
                if node is _node_at(tree, loc) and isinstance(node, yaml.MappingNode):
                    node = _node_at(tree, loc[:-1])
                raise CampaignError(f"template file not found: {name}", path=path,
                                    line=node.start_mark.line + 1,
                                    column=node.start_mark.column + 1)


def load_campaign(path: Path, *, root: Path | None = None) -> Campaign:
    """Read and validate a campaign; with ``root`` (the workspace) also check its files exist."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignError(f"cannot read campaign file: {exc.strerror}", path=shown) from exc
    except UnicodeDecodeError as exc:
        raise CampaignError(f"not UTF-8 text: {exc.reason}", path=shown) from exc
    tree = _compose(text, shown)
    if tree is not None:
        _check_tree(tree, shown)
    data = yaml.safe_load(text) if tree is not None else None
    if tree is None or not isinstance(data, dict):
        raise CampaignError("a campaign file must be a mapping of keys to values", path=shown,
                            line=1 if tree is None else tree.start_mark.line + 1,
                            column=1 if tree is None else tree.start_mark.column + 1)
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        # An unknown key first: a typo'd key usually also explains a "missing" one.
        found = exc.errors()
        first = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
        loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
        node = _node_at(tree, loc, key=first["type"] == "extra_forbidden")
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if loc == ("audience", "where") and isinstance(node, yaml.ScalarNode):
            line, column = _filter_position(node, column)
        raise CampaignError(_describe(first), path=shown, line=line, column=column) from exc
    if root is not None:
        _check_templates(campaign, root, shown, tree)
    return campaign


def locate(path: Path, loc: tuple[str | int, ...]) -> tuple[int | None, int | None]:
    """``(line, column)`` of the value at ``loc`` in a campaign file that loaded before.

    For checks made after loading (a cron line that APScheduler refuses), so their
    errors point at the value as well as the loader's own do.
    """
    try:
        tree = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None, None
    if tree is None:
        return None, None
    node = _node_at(tree, loc)
    return node.start_mark.line + 1, node.start_mark.column + 1
