"""A small, safe expression language for per-record transformations and on-demand features.

Python expression syntax restricted to arithmetic, comparisons, ``x if c else y``, ``and``/``or``/``not``,
constants, tuples/lists/sets of constants (for ``in``) and the functions in ``FUNCTIONS``; every other
node (attribute access, subscripts, lambdas, comprehensions ...) is refused when the text is parsed.
Values are numbers, strings and bools: a bare name passes a string through (``segment``, or
``str(code)`` for a number as a category).
An expression is compiled once into nested closures, so evaluating it costs no parsing.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

Scalar = float | int | str | bool
Env = Mapping[str, Any]
_Eval = Callable[[Env], Any]

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log1p": math.log1p,
    "log": math.log,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "min": min,
    "max": max,
    "float": float,
    "str": str,
    "round": round,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class ExpressionError(ValueError):
    """The text is not a valid expression, or evaluating it failed (missing name, wrong type, x/0 ...)."""


class Expression:
    """A compiled expression. ``names`` are its free identifiers (record fields, context fields, features)."""

    def __init__(self, text: str) -> None:
        """Parse and compile ``text``; raises ExpressionError naming what is not allowed."""
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from exc
        self.text = text
        self._names: set[str] = set()
        self._eval = self._compile(tree.body)
        self.names = frozenset(self._names)

    def evaluate(self, env: Env) -> Scalar:
        """The value for ``env`` (name -> value): a number, string or bool. Raises ExpressionError when a
        name is missing, evaluating fails, or the result is something else (a tuple of constants, None)."""
        try:
            value = self._eval(env)
        except KeyError as exc:
            raise ExpressionError(f"{self.text!r}: {exc.args[0]!r} has no value") from exc
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExpressionError(f"{self.text!r}: {exc}") from exc
        if not isinstance(value, int | float | str | bool):
            shown = "no value" if value is None else f"a {type(value).__name__}"
            raise ExpressionError(f"{self.text!r} gives {shown}, not a number, string or bool")
        return value

    def _compile(self, node: ast.expr) -> _Eval:  # noqa: PLR0911, PLR0912
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
            value = node.value
            return lambda _env: value
        if isinstance(node, ast.Name):
            name = node.id
            self._names.add(name)
            return lambda env: env[name]
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = [self._compile(e) for e in node.elts]
            return lambda env: frozenset(i(env) for i in items)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op, left, right = _BINARY[type(node.op)], self._compile(node.left), self._compile(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda env: -operand(env)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return lambda env: not operand(env)
        if isinstance(node, ast.BoolOp):
            values = [self._compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda env: all(v(env) for v in values)
            return lambda env: any(v(env) for v in values)
        if isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
            first = self._compile(node.left)
            chain = [(_COMPARE[type(o)], self._compile(c)) for o, c in zip(node.ops, node.comparators, strict=True)]

            def compare(env: Env) -> bool:
                left = first(env)
                for op, comparator in chain:
                    right = comparator(env)
                    if not op(left, right):
                        return False
                    left = right
                return True

            return compare
        if isinstance(node, ast.IfExp):
            test, body, orelse = self._compile(node.test), self._compile(node.body), self._compile(node.orelse)
            return lambda env: body(env) if test(env) else orelse(env)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS
            and not node.keywords
        ):
            function = FUNCTIONS[node.func.id]
            args = [self._compile(a) for a in node.args]
            return lambda env: function(*(a(env) for a in args))
        allowed = ", ".join(sorted(FUNCTIONS))
        raise ExpressionError(
            f"invalid expression {self.text!r}: {ast.unparse(node)!r} is not allowed "
            f"(arithmetic, comparisons, if/else, and/or/not, constants and the functions {allowed})"
        )
