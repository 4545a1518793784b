"""A renderer for the small subset of Helm's Go templates that `deploy/helm/trivium` uses.

No `helm` binary (nor any Go template engine) can be installed here, so the chart is written in
a deliberately small subset and this module evaluates exactly that subset. Anything outside it
raises `TemplateError` instead of being skipped, so a test cannot pass over a construct it did
not evaluate. What it emulates from Helm, and what it is stricter about:

- actions `{{ }}` with `{{-`/`-}}` whitespace trimming and `{{/* comments */}}`;
- `if`/`else if`/`else`, `with`/`else`, `range` (lists, and maps in sorted key order, with
  `$k, $v :=`), `define`, `end`; variables `$x := ...`, `$x = ...`, `$`; pipelines with `|`;
- fields on maps (`.Values.a.b`, `$.Release.Name`, `.Chart.AppVersion`), `.Files.Get`;
- functions: include tpl toYaml nindent indent quote default printf required fail dict not and
  or eq ne contains trunc trimSuffix sha256sum;
- numbers from values are Go float64s, as in Helm: printed with Go's `%v` (1048576 prints as
  `1.048576e+06`), so a template that prints a large number directly fails a test as it would
  fail in a cluster; `eq`/`ne` refuse numbers (Go's comparison of float64 with an int literal
  is an error);
- stricter than Helm: a field on nil is an error (as in Go), and printing nil (Helm's
  `<no value>`, replaced by an empty string) is an error too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

__all__ = ("ChartFailError", "RenderedChart", "TemplateError", "go_values", "render_chart")


class TemplateError(Exception):
    """The template uses something outside the supported subset, or is malformed."""


class ChartFailError(Exception):
    """The chart itself refused to render (`fail`, `required`)."""


# ---------------------------------------------------------------- values as Go sees them


def go_values(data: Any) -> Any:
    """YAML data as Helm holds it after its JSON round trip: every number a float64."""
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return data
    if isinstance(data, int | float):
        return float(data)
    if isinstance(data, list):
        return [go_values(item) for item in data]
    if isinstance(data, dict):
        return {str(key): go_values(value) for key, value in data.items()}
    raise TemplateError(f"values hold an unsupported type: {type(data).__name__}")


def _go_float(value: float) -> str:
    """Go's `%v` for a float64: strconv 'g' with the shortest digits, so %e from 1e+06."""
    if math.isnan(value) or math.isinf(value):
        raise TemplateError(f"cannot print {value}")
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    count = len(digits)
    exp = count + exponent - 1
    text = "".join(map(str, digits))
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if count > 1 else "")
        return f"{'-' if sign else ''}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return f"{value:.{max(count - exp - 1, 0)}f}"


def _print(value: Any) -> str:
    if value is None:
        raise TemplateError("printing nil (Helm would render an empty string from <no value>)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise TemplateError(f"printing a {type(value).__name__} directly; use toYaml")


def _truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | dict):
        return bool(value)
    return True


# ---------------------------------------------------------------- lexing and parsing

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<assign>:=|=)
    | (?P<punct>[()|,])
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    text: str


def _tokens(source: str, where: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    source = source.strip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"{where}: cannot parse {source[pos:]!r}")
        kind = match.lastgroup or ""
        out.append(Tok(kind, match.group(kind)))
        pos = match.end()
        while pos < len(source) and source[pos].isspace():
            pos += 1
    return out


@dataclass
class Node:
    kind: str  # text, action, if, with, range, define
    text: str = ""
    tokens: list[Tok] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)
    where: str = ""


def _lex(source: str, name: str) -> Iterator[tuple[str, str, str]]:
    """(kind, text, where) with `text` or `action` kinds, whitespace trimming applied."""
    pos = 0
    trim_left = False
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_left:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        yield _text(text, name)
        line = source.count("\n", 0, match.start()) + 1
        yield "action", match.group(2), f"{name}:{line}"
        trim_left = bool(match.group(3))
        pos = match.end()
    text = source[pos:]
    yield _text(text.lstrip(" \t\r\n") if trim_left else text, name)


def _text(text: str, name: str) -> tuple[str, str, str]:
    if "{{" in text or "}}" in text:
        raise TemplateError(f"{name}: unbalanced braces near {text[:60]!r}")
    return "text", text, name


class _Parser:
    """Builds the node tree; `stack` holds (open block, the list it was appended to)."""

    def __init__(self) -> None:
        self.root: list[Node] = []
        self.stack: list[tuple[Node, list[Node]]] = []
        self.current = self.root

    def open(self, node: Node) -> None:
        self.current.append(node)
        self.stack.append((node, self.current))
        self.current = node.body

    def else_(self, toks: list[Tok], where: str) -> None:
        if not self.stack or self.stack[-1][0].kind not in {"if", "with", "range"}:
            raise TemplateError(f"{where}: else outside if/with/range")
        node, parent = self.stack[-1]
        if node.otherwise:
            raise TemplateError(f"{where}: a second else")
        if len(toks) > 1:
            if toks[1].text != "if" or node.kind != "if":
                raise TemplateError(f"{where}: only `else if` chains are supported")
            nested = Node("if", tokens=toks[2:], where=where)
            node.otherwise = [nested]
            # `else if` shares the outer `end`: the nested node takes the outer's place
            self.stack[-1] = (nested, parent)
            self.current = nested.body
        else:
            node.otherwise = [Node("text", text="")]  # marks the else as seen
            self.current = node.otherwise

    def end(self, toks: list[Tok], where: str) -> None:
        if not self.stack or len(toks) > 1:
            raise TemplateError(f"{where}: unexpected end")
        _node, self.current = self.stack.pop()

    def action(self, body: str, where: str) -> None:
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"{where}: unterminated comment")
            return
        toks = _tokens(body, where)
        if not toks:
            raise TemplateError(f"{where}: empty action")
        head = toks[0].text if toks[0].kind == "ident" else ""
        if head in {"if", "with", "range", "define"}:
            self.open(Node(head, tokens=toks[1:], where=where))
        elif head == "else":
            self.else_(toks, where)
        elif head == "end":
            self.end(toks, where)
        elif head in {"template", "block", "break", "continue", "nil"}:
            raise TemplateError(f"{where}: `{head}` is outside the supported subset")
        else:
            self.current.append(Node("action", tokens=toks, where=where))


def parse(source: str, name: str) -> list[Node]:
    parser = _Parser()
    for kind, text, where in _lex(source, name):
        if kind == "action":
            parser.action(text.strip(), where)
        elif text:
            parser.current.append(Node("text", text=text))
    if parser.stack:
        node = parser.stack[-1][0]
        raise TemplateError(f"{name}: {node.kind} at {node.where} has no end")
    return parser.root


# ---------------------------------------------------------------- evaluation


class Vars:
    """Go's variable scopes: `:=` declares in the innermost, `=` assigns where declared."""

    def __init__(self, parent: Vars | None = None) -> None:
        self.parent = parent
        self.own: dict[str, Any] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.own or (self.parent is not None and name in self.parent)

    def __getitem__(self, name: str) -> Any:
        if name in self.own:
            return self.own[name]
        if self.parent is None:
            raise KeyError(name)
        return self.parent[name]

    def declare(self, name: str, value: Any) -> None:
        self.own[name] = value

    def assign(self, name: str, value: Any) -> None:
        if name in self.own:
            self.own[name] = value
        elif self.parent is not None and name in self.parent:
            self.parent.assign(name, value)
        else:
            raise KeyError(name)


@dataclass
class Scope:
    dot: Any
    root: Any
    variables: Vars


class Renderer:
    def __init__(self, chart_dir: Path) -> None:
        self.chart_dir = chart_dir
        self.defines: dict[str, list[Node]] = {}
        self.depth = 0

    def add_defines(self, nodes: list[Node]) -> list[Node]:
        rest: list[Node] = []
        for node in nodes:
            if node.kind == "define":
                if len(node.tokens) != 1 or node.tokens[0].kind != "str":
                    raise TemplateError(f"{node.where}: define needs one quoted name")
                self.defines[_unquote(node.tokens[0].text)] = node.body
            else:
                rest.append(node)
        return rest

    def execute(self, nodes: list[Node], scope: Scope) -> str:
        out: list[str] = []
        for node in nodes:
            out.append(self._node(node, scope))
        return "".join(out)

    def _node(self, node: Node, scope: Scope) -> str:
        if node.kind == "text":
            return node.text
        if node.kind == "action":
            value = self._pipeline(node.tokens, scope, node.where, declare=True)
            return "" if value is _NOTHING else _print(value)
        if node.kind == "if":
            inner = Scope(scope.dot, scope.root, Vars(scope.variables))
            if _truthy(self._pipeline(node.tokens, inner, node.where, declare=True)):
                return self.execute(node.body, inner)
            return self.execute(node.otherwise, inner)
        if node.kind == "with":
            inner = Scope(scope.dot, scope.root, Vars(scope.variables))
            value = self._pipeline(node.tokens, inner, node.where, declare=True)
            if _truthy(value):
                return self.execute(node.body, Scope(value, scope.root, inner.variables))
            return self.execute(node.otherwise, inner)
        if node.kind == "range":
            return self._range(node, scope)
        if node.kind == "define":
            raise TemplateError(f"{node.where}: define must be at the top level")
        raise TemplateError(f"{node.where}: unknown node {node.kind}")

    def _range(self, node: Node, scope: Scope) -> str:
        toks = node.tokens
        names: list[str] = []
        if any(tok.kind == "assign" for tok in toks):
            split = next(i for i, tok in enumerate(toks) if tok.kind == "assign")
            names = [tok.text for tok in toks[:split] if tok.kind == "var"]
            if toks[split].text != ":=" or not 1 <= len(names) <= 2:
                raise TemplateError(f"{node.where}: range takes `$v :=` or `$k, $v :=`")
            toks = toks[split + 1 :]
        value = self._pipeline(toks, scope, node.where)
        if value is None or value == [] or value == {}:
            return self.execute(node.otherwise, scope)
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = [(key, value[key]) for key in sorted(value)]
        elif isinstance(value, list):
            items = [(float(i), item) for i, item in enumerate(value)]
        else:
            raise TemplateError(f"{node.where}: range over {type(value).__name__}")
        out: list[str] = []
        for key, item in items:
            variables = Vars(scope.variables)
            if len(names) == 1:
                variables.declare(names[0], item)
            elif len(names) == 2:
                variables.declare(names[0], key)
                variables.declare(names[1], item)
            out.append(self.execute(node.body, Scope(item, scope.root, variables)))
        return "".join(out)

    # -- pipelines

    def _pipeline(self, toks: list[Tok], scope: Scope, where: str, declare: bool = False) -> Any:
        target: tuple[str, str] | None = None
        if len(toks) >= 2 and toks[0].kind == "var" and toks[1].kind == "assign":
            if not declare:
                raise TemplateError(f"{where}: variable declaration not allowed here")
            target = (toks[0].text, toks[1].text)
            toks = toks[2:]
        commands: list[list[Tok]] = [[]]
        depth = 0
        for tok in toks:
            if tok.text == "(" and tok.kind == "punct":
                depth += 1
            elif tok.text == ")" and tok.kind == "punct":
                depth -= 1
            if tok.kind == "punct" and tok.text == "|" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(tok)
        if depth != 0 or any(not command for command in commands):
            raise TemplateError(f"{where}: malformed pipeline")
        value: Any = _NOTHING
        for command in commands:
            value = self._command(command, scope, where, value)
        if target is not None:
            name, op = target
            if op == ":=":
                scope.variables.declare(name, value)
            elif name in scope.variables:
                scope.variables.assign(name, value)
            else:
                raise TemplateError(f"{where}: assignment to undeclared {name}")
            return _NOTHING
        return value

    def _command(self, toks: list[Tok], scope: Scope, where: str, piped: Any) -> Any:
        args: list[Any] = []
        head = toks[0]
        rest = _split_operands(toks[1:], where)
        if head.kind == "ident" and head.text not in {"true", "false"}:
            args = [self._operand(op, scope, where) for op in rest]
            if piped is not _NOTHING:
                args.append(piped)
            return self._call(head.text, args, scope, where)
        first = self._operand(_split_operands(toks, where)[0], scope, where)
        operands = _split_operands(toks, where)
        if callable(first):
            args = [self._operand(op, scope, where) for op in operands[1:]]
            if piped is not _NOTHING:
                args.append(piped)
            return first(*args)
        if len(operands) > 1 or piped is not _NOTHING:
            raise TemplateError(f"{where}: {head.text} is not a function")
        return first

    def _operand(self, toks: list[Tok], scope: Scope, where: str) -> Any:
        tok = toks[0]
        if tok.kind == "punct" and tok.text == "(":
            if toks[-1].text != ")":
                raise TemplateError(f"{where}: field access on a parenthesised pipeline")
            return self._pipeline(toks[1:-1], scope, where)
        if len(toks) != 1:
            raise TemplateError(f"{where}: unexpected {toks[1].text!r}")
        if tok.kind == "str":
            return _unquote(tok.text)
        if tok.kind == "raw":
            return tok.text[1:-1]
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "ident" and tok.text in {"true", "false"}:
            return tok.text == "true"
        if tok.kind == "field":
            return _walk(scope.dot, tok.text, where)
        if tok.kind == "var":
            name, _, path = tok.text.partition(".")
            if name == "$":
                base = scope.root
            elif name in scope.variables:
                base = scope.variables[name]
            else:
                raise TemplateError(f"{where}: undefined variable {name}")
            return _walk(base, "." + path, where) if path else base
        raise TemplateError(f"{where}: unexpected {tok.text!r}")

    def _call(self, name: str, args: list[Any], scope: Scope, where: str) -> Any:
        if name == "include":
            _arity(name, args, 2, where)
            return self.include(str(args[0]), args[1], where)
        if name == "tpl":
            _arity(name, args, 2, where)
            if not isinstance(args[0], str):
                raise TemplateError(f"{where}: tpl needs a string")
            nodes = self.add_defines(parse(args[0], f"{where}(tpl)"))
            return self.execute(nodes, Scope(args[1], args[1], Vars()))
        function = _FUNCTIONS.get(name)
        if function is None:
            raise TemplateError(f"{where}: function {name!r} is outside the supported subset")
        try:
            return function(*args)
        except TypeError as exc:
            raise TemplateError(f"{where}: {name}: {exc}") from exc

    def include(self, name: str, data: Any, where: str) -> str:
        if name not in self.defines:
            raise TemplateError(f"{where}: no template named {name!r}")
        self.depth += 1
        if self.depth > 50:
            raise TemplateError(f"{where}: include nested too deep")
        try:
            return self.execute(self.defines[name], Scope(data, data, Vars()))
        finally:
            self.depth -= 1


class _Nothing:
    pass


_NOTHING: Any = _Nothing()


def _split_operands(toks: list[Tok], where: str) -> list[list[Tok]]:
    operands: list[list[Tok]] = []
    depth = 0
    for tok in toks:
        if depth == 0:
            operands.append([])
        operands[-1].append(tok)
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        elif tok.kind in {"punct", "assign"} and depth == 0:
            raise TemplateError(f"{where}: unexpected {tok.text!r}")
    return operands


def _walk(base: Any, path: str, where: str) -> Any:
    value = base
    if path == ".":
        return value
    for key in path.strip(".").split("."):
        if value is None:
            raise TemplateError(f"{where}: nil pointer evaluating {path} (at .{key})")
        if not isinstance(value, Mapping):
            raise TemplateError(f"{where}: field .{key} of a {type(value).__name__}")
        value = value.get(key)
    return value


def _unquote(text: str) -> str:
    value = yaml.safe_load(text)  # Go string escapes used here are a subset of YAML's
    if not isinstance(value, str):
        raise TemplateError(f"bad string literal {text}")
    return value


def _arity(name: str, args: list[Any], count: int, where: str) -> None:
    if len(args) != count:
        raise TemplateError(f"{where}: {name} takes {count} arguments, got {len(args)}")


# ---------------------------------------------------------------- functions (Sprig/Helm)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TemplateError(f"expected an integer, got {value!r}")
    return int(value)


def _to_yaml(value: Any) -> str:
    def plain(item: Any) -> Any:  # Helm: JSON marshal, so integral float64s print as ints
        if isinstance(item, float) and item == int(item) and abs(item) < 2**53:
            return int(item)
        if isinstance(item, list):
            return [plain(x) for x in item]
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        return item

    if value is None:
        return "null"
    text = yaml.safe_dump(plain(value), default_flow_style=False, sort_keys=True, width=1 << 30)
    if text.endswith("...\n"):  # a scalar document
        text = text[: -len("...\n")]
    return text.rstrip("\n")


def _indent(count: Any, text: Any) -> str:
    pad = " " * _int(count)
    return pad + _print(text).replace("\n", "\n" + pad)


def _quote(*values: Any) -> str:
    out = []
    for value in values:
        if value is None:
            continue
        text = _print(value)
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
            raise TemplateError("quote: control characters are outside the subset")
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        out.append('"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"')
    return " ".join(out)


def _empty(value: Any) -> bool:
    return not _truthy(value)


def _default(fallback: Any, *given: Any) -> Any:
    if len(given) > 1:
        raise TemplateError("default takes two arguments")
    return fallback if not given or _empty(given[0]) else given[0]


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise TemplateError("printf needs a format string")
    pieces = re.split(r"(%[sv%])", fmt)
    if re.search(r"%[^sv%]", fmt):
        raise TemplateError(f"printf: only %s and %v are supported: {fmt!r}")
    queue = list(args)
    out: list[str] = []
    for piece in pieces:
        if piece == "%%":
            out.append("%")
        elif piece in {"%s", "%v"}:
            if not queue:
                raise TemplateError(f"printf: too few arguments for {fmt!r}")
            value = queue.pop(0)
            if piece == "%s" and not isinstance(value, str):
                raise TemplateError(f"printf: %s of a {type(value).__name__}")
            out.append(_print(value))
        else:
            out.append(piece)
    if queue:
        raise TemplateError(f"printf: too many arguments for {fmt!r}")
    return "".join(out)


def _required(message: Any, value: Any = None) -> Any:
    if value is None or value == "":
        raise ChartFailError(str(message))
    return value


def _fail(message: Any) -> Any:
    raise ChartFailError(str(message))


def _dict(*pairs: Any) -> dict[str, Any]:
    if len(pairs) % 2:
        raise TemplateError("dict needs key/value pairs")
    out: dict[str, Any] = {}
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if not isinstance(key, str):
            raise TemplateError("dict keys must be strings")
        out[key] = value
    return out


def _comparable(value: Any) -> Any:
    if isinstance(value, float):
        raise TemplateError("eq/ne on numbers is outside the subset (float64 vs int literal)")
    if not isinstance(value, str | bool) and value is not None:
        raise TemplateError(f"eq/ne on a {type(value).__name__}")
    return value


def _and(*values: Any) -> Any:
    for value in values:
        if not _truthy(value):
            return value
    return values[-1]


def _or(*values: Any) -> Any:
    for value in values:
        if _truthy(value):
            return value
    return values[-1]


def _str_fn(function: Callable[[str, str], Any]) -> Callable[[Any, Any], Any]:
    def call(first: Any, second: Any) -> Any:
        if not isinstance(second, str):
            raise TemplateError(f"expected a string, got {second!r}")
        return function(first if isinstance(first, str) else str(_int(first)), second)

    return call


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "toYaml": _to_yaml,
    "nindent": lambda count, text: "\n" + _indent(count, text),
    "indent": _indent,
    "quote": _quote,
    "default": _default,
    "printf": _printf,
    "required": _required,
    "fail": _fail,
    "dict": _dict,
    "not": lambda value: not _truthy(value),
    "and": _and,
    "or": _or,
    "eq": lambda a, b: _comparable(a) == _comparable(b),
    "ne": lambda a, b: _comparable(a) != _comparable(b),
    "contains": _str_fn(lambda sub, text: sub in text),
    "trunc": _str_fn(lambda count, text: text[: int(count)]),
    "trimSuffix": _str_fn(lambda suffix, text: text.removesuffix(suffix)),
    "sha256sum": lambda text: hashlib.sha256(_print(text).encode()).hexdigest(),
}


# ---------------------------------------------------------------- the chart


@dataclass
class RenderedChart:
    manifests: dict[str, str]  # template path -> rendered text
    notes: str


def render_chart(
    chart_dir: Path,
    values: Mapping[str, Any],
    release_name: str = "trivium",
    namespace: str = "default",
) -> RenderedChart:
    """Render every template of the chart with `values` (already merged over values.yaml)."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))

    def files_get(path: Any) -> str:
        if not isinstance(path, str):
            raise TemplateError(".Files.Get needs a path")
        target = (chart_dir / path).resolve()
        if chart_dir.resolve() not in target.parents or "templates" in target.parts[-2:-1]:
            raise TemplateError(f".Files.Get {path}: outside the chart's files")
        return target.read_text(encoding="utf-8") if target.is_file() else ""

    root = {
        "Values": go_values(dict(values)),
        "Release": {
            "Name": release_name,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": True,
            "IsUpgrade": False,
        },
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart.get("appVersion", ""),
        },
        "Files": {"Get": files_get},
    }
    renderer = Renderer(chart_dir)
    templates_dir = chart_dir / "templates"
    parsed: dict[str, list[Node]] = {}
    for path in sorted(templates_dir.rglob("*")):
        if path.is_file() and path.suffix in {".yaml", ".tpl", ".txt"}:
            name = str(path.relative_to(chart_dir))
            parsed[name] = renderer.add_defines(parse(path.read_text(encoding="utf-8"), name))
        elif path.is_file():
            raise TemplateError(f"unexpected file in templates/: {path.name}")
    manifests: dict[str, str] = {}
    notes = ""
    for name, nodes in parsed.items():
        text = renderer.execute(nodes, Scope(root, root, Vars()))
        if Path(name).name.startswith("_"):
            if text.strip():
                raise TemplateError(f"{name}: a partial renders text outside its defines")
        elif name.endswith("NOTES.txt"):
            notes = text
        else:
            manifests[name] = text
    return RenderedChart(manifests, notes)
