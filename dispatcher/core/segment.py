"""The ``where:`` filter of a campaign audience: a tiny, safe expression language.

``city == 'Berlin' and plan in ['pro', 'team'] and not domain == 'example.org'``

The text is parsed with :mod:`ast` (so it reads like Python) but only a
whitelisted tree is accepted -- comparisons, ``and``/``or``/``not``, ``in`` /
``not in`` over list literals, attribute names and literals -- and it is
compiled into plain closures. Nothing is ever passed to ``eval``; a call, an
attribute access, a subscript or a lambda is a :class:`SegmentError` naming
the column.

Semantics, shared with the SQL translation in :mod:`dispatcher.store.audience`:

* a name is a subscriber attribute; ``email``, ``name`` and ``domain`` (the
  lower-cased part after ``@``) are always there; a missing attribute is ``None``;
* a comparison with a string literal is true only when the value is a string;
* a comparison with a number accepts numbers and numeric strings (CSV imports
  store ``"42"``), so ``age >= 18`` works on imported lists;
* a comparison that cannot be made (``None < 3``) is false, never an error.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import CampaignError

BUILTIN_NAMES = ("email", "name", "domain")
Literal = str | int | float | bool | None
_NUMERIC = re.compile(r"^ *-?[0-9]+(\.[0-9]+)? *$")  # the same test the SQL translation makes


class SegmentError(CampaignError):
    """A ``where:`` expression that is not valid; ``column`` points into the expression."""


@dataclass(frozen=True)
class Compare:
    """``name OP value``; ``op`` is one of == != < <= > >= in notin; values is a tuple for in."""

    name: str
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Compare | And | Or | Not

_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "notin", ast.Is: "==", ast.IsNot: "!=",
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _error(message: str, node: ast.AST | None) -> SegmentError:
    column = getattr(node, "col_offset", None)
    return SegmentError(message, column=None if column is None else column + 1)


def _literal(node: ast.expr) -> Literal:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(
            node.value, str | int | float | bool)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)):
        return -node.operand.value
    raise _error("expected a literal (a quoted string, a number, True, False or None)", node)


def _compare(left: ast.expr, op: ast.cmpop, right: ast.expr) -> Compare:
    name = _OPS.get(type(op))
    if name is None:
        raise _error(f"operator {type(op).__name__} is not allowed", left)
    if isinstance(op, ast.Is | ast.IsNot) and not (
            isinstance(right, ast.Constant) and right.value is None):
        raise _error("'is' and 'is not' compare with None only", right)
    if name in ("in", "notin"):
        if not isinstance(left, ast.Name):
            raise _error("the left side of 'in' must be an attribute name", left)
        if not isinstance(right, ast.List | ast.Tuple | ast.Set):
            raise _error("'in' needs a list of literals, e.g. plan in ['pro', 'team']", right)
        return Compare(left.id, name, tuple(_literal(e) for e in right.elts))
    if isinstance(left, ast.Name):
        return Compare(left.id, name, _literal(right))
    if isinstance(right, ast.Name):
        return Compare(right.id, _FLIP[name], _literal(left))
    for side in (left, right):
        if not isinstance(side, ast.Constant | ast.UnaryOp):
            _build(side)  # raises the precise complaint (a call, a subscript ...)
    raise _error("a comparison needs an attribute name on one side", left)


def _build(node: ast.expr) -> Node:
    if isinstance(node, ast.BoolOp):
        parts = tuple(_build(v) for v in node.values)
        return And(parts) if isinstance(node.op, ast.And) else Or(parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_build(node.operand))
    if isinstance(node, ast.Compare):
        compares: list[Node] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            compares.append(_compare(left, op, right))
            left = right
        return compares[0] if len(compares) == 1 else And(tuple(compares))
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
        raise _error(f"{node.id} alone is not a condition", node)
    if isinstance(node, ast.Name):
        raise _error(f"{node.id!r} alone is not a condition; compare it, e.g. {node.id} == 'x'",
                     node)
    if isinstance(node, ast.Call):
        raise _error("function calls are not allowed", node)
    if isinstance(node, ast.Attribute | ast.Subscript):
        raise _error("only plain attribute names are allowed (no '.' or '[]')", node)
    raise _error(f"{type(node).__name__} is not allowed in a filter", node)


def parse(text: str) -> Node:
    """The filter tree of ``text``, or a :class:`SegmentError` with the column of the problem."""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SegmentError(f"syntax error: {exc.msg}", column=exc.offset) from None
    return _build(tree.body)


def names(node: Node) -> set[str]:
    """The attribute names a filter reads."""
    if isinstance(node, Compare):
        return {node.name}
    if isinstance(node, Not):
        return names(node.part)
    return set().union(*(names(p) for p in node.parts))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMERIC.match(value):
        return float(value)
    return None


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _matches(value: Any, op: str, literal: Literal) -> bool:
    """One comparison under the typed rules of the module docstring."""
    if literal is None:
        return (value is None) == (op == "==") if op in ("==", "!=") else False
    if isinstance(literal, bool):
        if not isinstance(value, bool) or op not in ("==", "!="):
            return op == "!="
        return _CMP[op](value, literal)
    if isinstance(literal, str):
        if not isinstance(value, str):
            return op == "!="
        return _CMP[op](value, literal)
    number = _number(value)
    if number is None:
        return op == "!="
    return _CMP[op](number, float(literal))


Predicate = Callable[[Mapping[str, Any]], bool]


def compile_filter(node: Node) -> Predicate:
    """A predicate over a record (attributes plus email, name and domain)."""
    if isinstance(node, And):
        parts = [compile_filter(p) for p in node.parts]
        return lambda r: all(p(r) for p in parts)
    if isinstance(node, Or):
        parts = [compile_filter(p) for p in node.parts]
        return lambda r: any(p(r) for p in parts)
    if isinstance(node, Not):
        inner = compile_filter(node.part)
        return lambda r: not inner(r)
    key, op, value = node.name, node.op, node.value
    if isinstance(value, tuple):
        options = value
        found: Predicate = lambda r: any(_matches(r.get(key), "==", o) for o in options)  # noqa: E731
        return found if op == "in" else (lambda r: not found(r))
    return lambda r: _matches(r.get(key), op, value)


def record(email: str, name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What a filter sees for one subscriber: the attributes plus the built-in names."""
    data = dict(attributes)
    data.update(email=email, name=name, domain=email.rpartition("@")[2].lower())
    return data
