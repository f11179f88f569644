"""What a shared bundle may contain: the code its configs may reach, and no patient data or local paths.

MONAI configs are code: a ``_target_`` names any importable callable and a ``"$..."`` string is evaluated
by Python. :func:`check_config` walks a config without instantiating or evaluating anything and keeps
every ``_target_`` and every ``$`` expression inside :data:`ALLOWED_MODULES`:

- a ``$`` expression is parsed with :mod:`ast` (``@id`` references read as a local name, as MONAI
  substitutes them). Allowed: the roots of :data:`ALLOWED_MODULES` and attribute chains on them that resolve
  to objects of those packages (``torch.os`` is the ``os`` module and is refused), the config's own
  references (``@id``, ``__local_refs``), names bound inside the expression (comprehensions, lambdas) and the
  plain builtins of :data:`SAFE_BUILTINS`. Refused: any other name (``__import__``, ``eval``, ``open``,
  ``getattr`` ...), attributes starting with ``_`` (``__class__``, ``__globals__``), the importers and
  shells of :data:`FORBIDDEN_NAMES` even inside the allowed packages, statements other than ``import``
  of an allowed module;
- a ``_target_`` is a dotted path resolved the same way, or a bare MONAI component name (``Compose``) found
  by MONAI's own :class:`~monai.bundle.config_item.ComponentLocator`;
- ``%`` macros that read another file and the ``_mode_`` key (``debug`` runs ``pdb``) are refused.

:func:`check_logging_conf` does the same for ``logging.conf`` (``logging.config.fileConfig`` evaluates its
``class`` and ``args`` entries). :func:`check_privacy` looks for patient identifiers (the tracking
package's rule, :data:`pipeline.tracking.base.FORBIDDEN_KEYS`, for keys, and the same words as
``key: value`` text) and for absolute paths.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import inspect
import json
import re
import types
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.share.archive import ArchiveError
from pipeline.tracking.base import FORBIDDEN_KEYS, check_keys

__all__ = [
    "ALLOWED_MODULES",
    "FORBIDDEN_NAMES",
    "SAFE_BUILTINS",
    "check_config",
    "check_expression",
    "check_logging_conf",
    "check_privacy",
    "check_target",
]

#: Packages whose code a shared bundle's configs may call.
ALLOWED_MODULES = ("pipeline", "monai", "torch", "ignite")

#: Builtins an expression may call: pure functions on values.
SAFE_BUILTINS = frozenset(
    {"abs", "all", "any", "bool", "dict", "enumerate", "float", "int", "isinstance", "len", "list", "max", "min",
     "range", "round", "set", "sorted", "str", "sum", "tuple", "zip"}
)

#: Names refused anywhere, also inside the allowed packages: they import, evaluate or run arbitrary code.
FORBIDDEN_NAMES = frozenset(
    {"optional_import", "import_module", "instantiate", "locate", "load_library", "run_cmd", "system", "popen",
     "exec", "eval", "compile", "hub", "cpp_extension", "get_package_version", "require_pkg", "load_module"}
)

#: Names MONAI puts in scope for an expression: the resolved references.
_REFERENCE_NAMES = frozenset({"__local_refs", "__ref__"})

#: ``@id`` references, as MONAI's reference resolver finds them in an expression.
_REFERENCE = re.compile(r"@[\w#:]+")


def _module_root(obj: Any) -> str | None:
    """The top-level package of a module, class or function; ``None`` when it names none."""
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return name.split(".")[0] if isinstance(name, str) else None


def _resolve(dotted: str, where: str) -> Any:
    """Import and walk ``dotted`` (root in :data:`ALLOWED_MODULES`); every step must stay in those packages.

    Raises:
        ArchiveError: a step outside the allowed packages, a forbidden or private name, or a missing name.
    """
    parts = dotted.split(".")
    if parts[0] not in ALLOWED_MODULES:
        raise ArchiveError(f"{where}: {dotted!r} is outside the allowed modules {', '.join(ALLOWED_MODULES)}")
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") or part in FORBIDDEN_NAMES:
            raise ArchiveError(f"{where}: {dotted!r} uses the forbidden name {part!r}")
        prefix = ".".join(parts[: i + 1])
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif isinstance(obj, types.ModuleType):
            try:
                obj = importlib.import_module(prefix)
            except ImportError:
                raise ArchiveError(f"{where}: {prefix!r} does not exist") from None
        else:
            raise ArchiveError(f"{where}: {prefix!r} does not exist")
        root = _module_root(obj) if (isinstance(obj, types.ModuleType) or inspect.isclass(obj)
                                      or callable(obj)) else None
        if root is not None and root not in ALLOWED_MODULES and root != "builtins":
            raise ArchiveError(f"{where}: {prefix!r} leads outside the allowed modules (to {root!r})")
        if isinstance(obj, types.ModuleType) and root == "builtins":
            raise ArchiveError(f"{where}: {prefix!r} leads outside the allowed modules")
    return obj


def _chain(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain on a plain name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _bound_names(tree: ast.AST) -> set[str]:
    """Names an expression binds itself: comprehension targets, lambda arguments, ``:=`` targets."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arguments):
            names.update(a.arg for a in [*node.posonlyargs, *node.args, *node.kwonlyargs])
            names.update(a.arg for a in (node.vararg, node.kwarg) if a is not None)
    return names


def _parse_statements(code: str, where: str) -> ast.Module:
    """``code`` that is not an expression: MONAI ``exec`` s it, so only ``import`` statements are allowed."""
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as err:
        raise ArchiveError(f"{where}: expression is not valid Python ({err.msg})") from None
    for statement in tree.body:
        if not isinstance(statement, (ast.Import, ast.ImportFrom)):
            raise ArchiveError(f"{where}: only `import` statements may appear in an expression")
    return tree


def check_expression(expression: str, where: str) -> None:
    """Refuse a MONAI ``$`` expression that reaches code outside :data:`ALLOWED_MODULES`.

    Args:
        expression: the config string, with or without its leading ``$``.
        where: ``<file>: <config id>``, for the message.

    Raises:
        ArchiveError: one line naming the file, the id and what is refused.

    >>> check_expression("$sum(p.numel() for p in @model.parameters())", "train.json: n")
    >>> check_expression("$__import__('os').system('id')", "train.json: x")
    Traceback (most recent call last):
        ...
    pipeline.share.archive.ArchiveError: train.json: x: expression calls the name '__import__', which is not allowed
    """
    code = _REFERENCE.sub("__ref__", expression[1:] if expression.startswith("$") else expression)
    try:
        tree: ast.AST = ast.parse(code, mode="eval")
    except SyntaxError:
        tree = _parse_statements(code, where)
    bound = _bound_names(tree)
    nodes = list(ast.walk(tree))
    for node in nodes:  # names first: `__import__('os').system(...)` is refused for `__import__`
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            allowed = _REFERENCE_NAMES | bound | SAFE_BUILTINS | set(ALLOWED_MODULES)
            if node.id not in allowed:
                raise ArchiveError(f"{where}: expression calls the name {node.id!r}, which is not allowed")
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise ArchiveError(f"{where}: relative imports are not allowed")
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom):
                modules += [f"{node.module}.{alias.name}" for alias in node.names]
            for module in modules:
                _resolve(module, where)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FORBIDDEN_NAMES:
                raise ArchiveError(f"{where}: expression uses the attribute {node.attr!r}, which is not allowed")
            dotted = _chain(node)
            if dotted is not None and dotted.split(".")[0] in ALLOWED_MODULES:
                _resolve(dotted, where)


def check_target(target: Any, where: str) -> None:
    """Refuse a ``_target_`` outside :data:`ALLOWED_MODULES`.

    Args:
        target: the ``_target_`` value: a dotted path, a MONAI component name, or a ``$`` expression.
        where: ``<file>: <config id>``, for the message.

    Raises:
        ArchiveError: one line naming the file, the id and the target.
    """
    if not isinstance(target, str):
        raise ArchiveError(f"{where}: _target_ must be a string, got {type(target).__name__}")
    if target.startswith("$"):
        check_expression(target, where)
    elif "." in target:
        _resolve(target, f"{where}: _target_")
    else:
        from monai.bundle.config_item import ComponentLocator

        if ComponentLocator().get_component_module_name(target) is None:
            raise ArchiveError(f"{where}: _target_ {target!r} is not a MONAI component nor a dotted path")


def _walk(config: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(id, key, value)`` of every entry of a nested config (lists indexed from 0)."""
    items = config.items() if isinstance(config, Mapping) else enumerate(config) if isinstance(config, list) else ()
    for key, value in items:
        sub = f"{path}#{key}" if path else str(key)
        yield sub, key, value
        yield from _walk(value, sub)


def check_config(config: Any, name: str) -> None:
    """Check every ``_target_``, ``$`` expression, ``%`` macro and ``_mode_`` of a parsed config file.

    Args:
        config: the JSON content of a bundle config file.
        name: the file's path in the bundle, for the messages.

    Raises:
        ArchiveError: the first thing refused, one line naming the file and the config id.
    """
    for config_id, key, value in _walk(config):
        where = f"{name}: {config_id}"
        if key == "_target_":  # named by the component it builds
            check_target(value, f"{name}: {config_id.rpartition('#')[0] or '(top level)'}")
        elif key == "_mode_" and value != "default":
            raise ArchiveError(f"{where}: _mode_ {value!r} is not allowed in a shared bundle")
        elif isinstance(value, str) and value.startswith("$"):
            check_expression(value, where)
        elif isinstance(value, str) and value.startswith("%") and value[1:].split("::")[0].split("#")[0]:
            raise ArchiveError(f"{where}: the macro {value!r} reads another file, which is not allowed")


#: ``logging.conf`` handler classes and arguments a shared bundle may use.
_LOG_CLASSES = frozenset({"StreamHandler", "logging.StreamHandler"})
_LOG_ARGS = frozenset({"()", "(sys.stdout,)", "(sys.stderr,)"})


def check_logging_conf(text: str, name: str) -> None:
    """Refuse a ``logging.conf`` whose evaluated entries could run code (``fileConfig`` evaluates them).

    Only ``StreamHandler`` to ``sys.stdout`` / ``sys.stderr`` and plain ``logging.Formatter`` s are allowed.

    Raises:
        ArchiveError: naming the section and entry.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as err:
        raise ArchiveError(f"{name}: not a logging configuration ({str(err).splitlines()[0]})") from None
    for section in parser.sections():
        for key, value in parser.items(section):
            compact = "".join(value.split())
            if key == "class" and compact not in _LOG_CLASSES | {"logging.Formatter"}:
                raise ArchiveError(f"{name}: [{section}] class {value!r} is not allowed in a shared bundle")
            if key in ("args", "kwargs") and compact not in _LOG_ARGS | {"{}"}:
                raise ArchiveError(f"{name}: [{section}] {key} {value!r} is not allowed in a shared bundle")


#: Patient identifiers written as text: the tracking guard's words (``patient_id``, ``patient``) used as a
#: key (``patient: ...``, ``"patient_id": ...``, ``PatientID=...``) or an id label (``patient id``).
_PATIENT_TEXT = re.compile(
    r"(?i)\b(?:" + "|".join(re.escape(k) for k in FORBIDDEN_KEYS) + r")(?:[_\- ]?(?:id|name|number)\b|\w*[\"']?\s*[:=])"
)
#: Absolute paths: POSIX (at least one folder), home-relative, Windows drives and UNC, absolute URIs.
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~\-])/(?!\.\.?/)(?:[\w.\-]+/)+[\w.\-]*|(?<![\w.])~/[\w.\-]+|\b[A-Za-z]:\\[\w.\-\\]+|\\\\[\w.\-]+\\"
    r"|\b(?:file|sqlite):////?[\w.\-]"
)


def _text_findings(text: str) -> str | None:
    """The first patient identifier or absolute path in ``text``, described, or ``None``."""
    for pattern, what in ((_PATIENT_TEXT, "a patient identifier"), (_ABSOLUTE_PATH, "an absolute path")):
        match = pattern.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            return f"{what} ({match.group(0).strip()!r}) on line {line}"
    return None


def _expression_paths(expression: str) -> str | None:
    """An absolute path written as a string constant of an expression (a suffix after ``+`` is not one)."""
    try:
        tree = ast.parse(_REFERENCE.sub("__ref__", expression[1:]), mode="eval")
    except SyntaxError:
        return None  # not an expression MONAI could evaluate either; check_config names it
    suffixes = {id(n.right) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in suffixes:
            found = _text_findings(node.value)
            if found:
                return found
    return None


def check_privacy(name: str, data: bytes) -> None:
    """Refuse a file that holds a patient identifier or an absolute (local data) path.

    JSON files: every key goes through the tracking guard (:func:`pipeline.tracking.base.check_keys`) and
    every string value is searched (string constants only, for ``$`` expressions). Other text files are
    searched whole. Binary files other than ``safetensors`` weights are refused (nothing to read them by).

    Raises:
        ArchiveError: naming the file and what was found.
    """
    if name.endswith(".safetensors"):
        return  # the weights' header is checked by the verifier after it is parsed safely
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{name}: binary file; a shared bundle holds text files and safetensors weights") from None
    if name.endswith(".json"):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArchiveError(f"{name}: not valid JSON ({err.msg}, line {err.lineno})") from None
        for config_id, key, value in _walk(content):
            try:
                check_keys({key: None}, "key")
            except ValueError:
                raise ArchiveError(f"{name}: {config_id}: a patient identifier key") from None
            if isinstance(value, str):
                found = _expression_paths(value) if value.startswith("$") else _text_findings(value)
                if found:
                    raise ArchiveError(f"{name}: {config_id}: {found.rsplit(' on line', 1)[0]}")
        return
    found = _text_findings(text)
    if found:
        raise ArchiveError(f"{name}: {found}")
