"""What a shared bundle may contain: the code its configs may reach, and no patient data or local paths.

MONAI configs are code: a ``_target_`` names any importable callable and a ``"$..."`` string is evaluated
by Python. :func:`check_config` walks a config without instantiating or evaluating anything and keeps it to
an explicit allow-list, exactly what the package's own bundle (``bundles/jssl_varnet/configs/*.json``) uses
(``tests/share/test_policy.py`` checks that every shipped config passes and that no entry is unused):

- a ``_target_`` is one of :data:`ALLOWED_CALLABLES` (dotted paths) or :data:`ALLOWED_COMPONENTS` (bare MONAI
  component names), or a ``$`` expression;
- a ``$`` expression is parsed with :mod:`ast` (``@id`` references read as a local name, as MONAI
  substitutes them) and never run. Every attribute chain on a package root (``pipeline``, ``monai``,
  ``torch``, ``ignite``) must be one of :data:`ALLOWED_CALLABLES` as a whole (``torch.os.getcwd`` and
  ``monai.bundle.run`` are refused; so is a bare ``torch``); attributes of anything else (a reference, a
  call's result, a bound name) must be one of :data:`ALLOWED_ATTRIBUTES` (``parameters``, ``to`` ...). Other
  names: the config's own references, the plain builtins of :data:`SAFE_BUILTINS`, and names a lambda or a
  comprehension binds, inside that lambda or comprehension only; a bound name may not shadow a builtin, a
  package root or a reference (``(lambda exec: 0) and exec(...)`` is refused). ``:=`` is refused. Statements
  other than ``import`` of one of :data:`ALLOWED_IMPORTS` (no alias) are refused;
- ``weights_only`` set to anything but ``True`` (a config key or a keyword argument), ``%`` macros that read
  another file and the ``_mode_`` key (``debug`` runs ``pdb``) are refused.

:func:`check_logging_conf` does the same for ``logging.conf`` (``logging.config.fileConfig`` evaluates its
``class`` and ``args`` entries). :func:`check_not_pickle` refuses any file that parses as a pickle (protocols
0 to 5; protocol 0 is plain ASCII text). :func:`check_privacy` looks for patient identifiers (the tracking
package's rule, :data:`pipeline.tracking.base.FORBIDDEN_KEYS`, for keys, and the same words as
``key: value`` text) and for absolute paths.
"""

from __future__ import annotations

import ast
import builtins
import configparser
import json
import pickletools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.share.archive import ArchiveError
from pipeline.tracking.base import FORBIDDEN_KEYS, check_keys

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_CALLABLES",
    "ALLOWED_COMPONENTS",
    "ALLOWED_IMPORTS",
    "ALLOWED_MODULES",
    "SAFE_BUILTINS",
    "check_config",
    "check_expression",
    "check_logging_conf",
    "check_not_pickle",
    "check_privacy",
    "check_target",
]

#: Package roots an attribute chain of an expression may start from (the chain itself must be allowed).
ALLOWED_MODULES = ("pipeline", "monai", "torch", "ignite")

#: Callables and classes a config may name, as a ``_target_`` or as a whole attribute chain of an expression.
ALLOWED_CALLABLES = frozenset({
    "monai.utils.path_to_sqlite_uri",
    "pipeline.data.ShapeBatchSampler", "pipeline.data.SliceDataset", "pipeline.data.manifest_dataset",
    "pipeline.data.manifest_digest", "pipeline.data.resolve_inputs",
    "pipeline.engines.DataErrorExit", "pipeline.engines.InterleavedLoader", "pipeline.engines.JSSLTrainer",
    "pipeline.engines.ReconstructionEvaluator", "pipeline.engines.branch_sections",
    "pipeline.engines.ensure_demo_data", "pipeline.engines.finalize_distributed", "pipeline.engines.init_distributed",
    "pipeline.engines.is_not_rank0", "pipeline.engines.keep_text_settings", "pipeline.engines.preflight",
    "pipeline.engines.record_skipped_files", "pipeline.engines.return_freed_memory",
    "pipeline.engines.seed_everything", "pipeline.engines.skipped_files",
    "pipeline.engines.uses_branch", "pipeline.engines.wrap_ddp",
    "pipeline.handlers.AtomicCheckpointSaver", "pipeline.handlers.BestModelSaver",
    "pipeline.handlers.ExportBundleWeights", "pipeline.handlers.MetricsReport", "pipeline.handlers.RNGState",
    "pipeline.handlers.ResumeFromLatestCheckpoint", "pipeline.handlers.TrainingProgress",
    "pipeline.handlers.bundle_weights", "pipeline.handlers.load_weights",
    "pipeline.io.VolumeWriter", "pipeline.losses.JointLoss",
    "pipeline.metrics.VolumeMetrics", "pipeline.metrics.method_metrics", "pipeline.metrics.volume_output_transform",
    "pipeline.networks.build_network", "pipeline.networks.compile_unets",
    "pipeline.share.parent_bundle_hash", "pipeline.share.parent_weights",
    "pipeline.tracking.MLflowTracker", "pipeline.tracking.RegisterModel", "pipeline.tracking.TrackingHandler",
    "pipeline.tracking.ValidationLogger", "pipeline.tracking.inference_weights",
    "pipeline.transforms.ApplyMaskd", "pipeline.transforms.FixedKspaceMaskd", "pipeline.transforms.NormalizeKspaced",
    "pipeline.transforms.RandKspaceMaskd", "pipeline.transforms.RandSSDUSplitd", "pipeline.transforms.ReadoutCropd",
    "torch.cuda.is_available", "torch.device", "torch.optim.Adam", "torch.optim.lr_scheduler.LinearLR",
    "torch.optim.lr_scheduler.SequentialLR", "torch.optim.lr_scheduler.StepLR",
})

#: MONAI component names a ``_target_`` may give without a module (MONAI's ``ComponentLocator`` finds them).
ALLOWED_COMPONENTS = frozenset(
    {"Compose", "DataLoader", "DistributedSampler", "LrScheduleHandler", "StatsHandler", "ValidationHandler"}
)

#: Modules a ``$import ...`` statement may import.
ALLOWED_IMPORTS = frozenset({"torch", "pipeline", "pipeline.engines", "pipeline.metrics", "pipeline.handlers",
                             "pipeline.tracking", "pipeline.share"})

#: Attributes an expression may read on a value that is not a package (a reference, a call's result, a bound
#: name): the methods the bundle's configs call. None of them is an attribute of an allowed import.
ALLOWED_ATTRIBUTES = frozenset({"get", "numel", "parameters", "run", "schedule", "to"})

#: Builtins an expression may call: pure functions on values.
SAFE_BUILTINS = frozenset(
    {"abs", "all", "any", "bool", "dict", "enumerate", "float", "int", "isinstance", "len", "list", "max", "min",
     "range", "round", "set", "sorted", "str", "sum", "tuple", "zip"}
)

#: Names MONAI puts in scope for an expression: the resolved references.
_REFERENCE_NAMES = frozenset({"__local_refs", "__ref__"})

#: Names a lambda or comprehension may not bind: they would hide what a later name means.
_RESERVED_NAMES = frozenset(dir(builtins)) | set(ALLOWED_MODULES) | _REFERENCE_NAMES

#: ``@id`` references, as MONAI's reference resolver finds them in an expression.
_REFERENCE = re.compile(r"@[\w#:]+")

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _chain(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain on a plain name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _parse_statements(code: str, where: str) -> None:
    """``code`` that is not an expression: MONAI ``exec`` s it, so only ``import <allowed module>`` is allowed."""
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as err:
        raise ArchiveError(f"{where}: expression is not valid Python ({err.msg})") from None
    for statement in tree.body:
        if not isinstance(statement, ast.Import):
            raise ArchiveError(f"{where}: only `import <module>` statements may appear in an expression")
        for alias in statement.names:
            if alias.asname is not None:
                raise ArchiveError(f"{where}: `import {alias.name} as {alias.asname}` renames a module; not allowed")
            if alias.name not in ALLOWED_IMPORTS:
                raise ArchiveError(f"{where}: `import {alias.name}` is not allowed (allowed: "
                                   f"{', '.join(sorted(ALLOWED_IMPORTS))})")


class _ExpressionChecker:
    """Walk an expression with its scopes: each name is resolved where it is used (see the module docstring)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def refuse(self, what: str, why: str = "which is not allowed") -> None:
        raise ArchiveError(f"{self.where}: expression {what}, {why}")

    def bind(self, names: set[str], scope: frozenset[str]) -> frozenset[str]:
        """``scope`` with ``names`` bound, refusing a name that would hide a builtin, package or reference."""
        for name in sorted(names & _RESERVED_NAMES):
            self.refuse(f"binds the name {name!r} (a builtin, package or reference)")
        return scope | names

    def visit(self, node: ast.AST, scope: frozenset[str]) -> None:
        if isinstance(node, ast.NamedExpr):
            self.refuse("assigns with ':='")
        elif isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                self.visit(default, scope)
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg,
                         node.args.kwarg]
            self.visit(node.body, self.bind({a.arg for a in arguments if a is not None}, scope))
        elif isinstance(node, _COMPREHENSIONS):
            inner = scope
            for i, generator in enumerate(node.generators):
                self.visit(generator.iter, scope if i == 0 else inner)  # the first iterable is evaluated outside
                inner = self.bind({n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}, inner)
                for condition in generator.ifs:
                    self.visit(condition, inner)
            for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
                self.visit(part, inner)
        elif isinstance(node, ast.Attribute):
            dotted = _chain(node)
            if dotted is not None and dotted.split(".")[0] in ALLOWED_MODULES:
                if dotted not in ALLOWED_CALLABLES:
                    self.refuse(f"uses {dotted!r}", "which is not in the allow-list of callables")
                return  # the whole chain is allowed; its prefixes are not values of their own
            self.visit(node.value, scope)  # inner names first: `__import__('os').system` names `__import__`
            if node.attr not in ALLOWED_ATTRIBUTES:
                self.refuse(f"uses the attribute {node.attr!r}")
        elif isinstance(node, ast.Name):
            if node.id in ALLOWED_MODULES:
                self.refuse(f"uses the package {node.id!r} itself")
            if node.id not in scope | SAFE_BUILTINS | _REFERENCE_NAMES:
                self.refuse(f"calls the name {node.id!r}")
        else:
            if isinstance(node, ast.keyword) and node.arg == "weights_only":
                if not (isinstance(node.value, ast.Constant) and node.value.value is True):
                    self.refuse("sets weights_only to something other than True")
            for child in ast.iter_child_nodes(node):
                self.visit(child, scope)


def check_expression(expression: str, where: str) -> None:
    """Refuse a MONAI ``$`` expression that reaches code outside the allow-list (see the module docstring).

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
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        _parse_statements(code, where)
        return
    _ExpressionChecker(where).visit(tree, frozenset())


def check_target(target: Any, where: str) -> None:
    """Refuse a ``_target_`` outside :data:`ALLOWED_CALLABLES` and :data:`ALLOWED_COMPONENTS`.

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
    elif target not in ALLOWED_CALLABLES | ALLOWED_COMPONENTS:
        raise ArchiveError(f"{where}: _target_ {target!r} is not in the allow-list of callables")


def _walk(config: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(id, key, value)`` of every entry of a nested config (lists indexed from 0)."""
    items = config.items() if isinstance(config, Mapping) else enumerate(config) if isinstance(config, list) else ()
    for key, value in items:
        sub = f"{path}#{key}" if path else str(key)
        yield sub, key, value
        yield from _walk(value, sub)


def check_config(config: Any, name: str) -> None:
    """Check every ``_target_``, ``$`` expression, ``%`` macro, ``_mode_`` and ``weights_only`` of a parsed config.

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
        elif key == "weights_only" and value is not True:
            raise ArchiveError(f"{where}: weights_only {value!r} loads pickle code; only true is allowed")
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

    Args:
        text: the file's content (``configparser`` format).
        name: the file's path in the bundle, for the message.

    Raises:
        ArchiveError: not a logging configuration, or naming the section and entry that is refused.
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


class _Discard:
    """A text sink: :func:`pickletools.dis` needs somewhere to write its listing."""

    def write(self, text: str) -> int:
        return len(text)


def check_not_pickle(name: str, data: bytes) -> None:
    """Refuse a file that is a pickle (any protocol, 0 to 5), whatever its name.

    ``torch.load(..., weights_only=False)`` or :func:`pickle.load` on it would run code, and a protocol-0 pickle
    is plain ASCII text that no other check would notice. The file is disassembled with
    :func:`pickletools.dis`, which simulates the pickle machine's stack without running anything: a file that
    reaches ``STOP`` with a consistent stack is a pickle (any data after it is ignored by ``pickle.load``).

    Args:
        name: the file's path in the bundle, for the message.
        data: its bytes.

    Raises:
        ArchiveError: ``<name>: a pickle ...``.
    """
    try:
        pickletools.dis(data, out=_Discard())
    except Exception:  # noqa: BLE001 - any disassembly error means: not a pickle
        return
    raise ArchiveError(f"{name}: the file is a pickle (loading it can run code); a shared bundle holds none")


#: Patient identifiers written as text: the tracking guard's words (``patient_id``, ``patient``) used as a
#: key (``patient: ...``, ``"patient_id": ...``, ``PatientID=...``) or an id label (``patient id``).
_PATIENT_TEXT = re.compile(
    r"(?i)\b(?:" + "|".join(re.escape(k) for k in FORBIDDEN_KEYS) + r")(?:[_\- ]?(?:id|name|number)\b|\w*[\"']?\s*[:=])"
)
#: Absolute paths: POSIX (``/data`` and ``/data/x.h5``; not ``and/or``, ``<output_dir>/x`` nor a URL's path),
#: home-relative, Windows drives (``C:\\scans``, ``C:/scans``) and UNC, absolute ``file:`` / ``sqlite:`` URIs.
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~\-`>)\]}])/(?!\.\.?/)[\w.\-]*[A-Za-z_][\w.\-]*(?:/[\w.\-]*)*|(?<![\w.])~/[\w.\-]+"
    r"|\b[A-Za-z]:[\\/][\w.\-\\/]+|\\\\[\w.\-]+\\|\b(?:file|sqlite):////?[\w.\-]"
)


def _text_findings(text: str) -> str | None:
    """The first patient identifier or absolute path in ``text``, described, or ``None``."""
    for pattern, what in ((_PATIENT_TEXT, "a patient identifier"), (_ABSOLUTE_PATH, "an absolute path")):
        match = pattern.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            return f"{what} ({match.group(0).strip()!r}) on line {line}"
    return None


def _string_values(tree: ast.AST) -> Iterator[str]:
    """The strings an expression starts values with: every string constant, except that a ``+`` chain or an
    f-string gives its leading constants joined (``'/mnt' + '/pacs'`` is ``/mnt/pacs``) and not the constants
    after a non-constant part (``@output_dir + '/models/model.pt'`` is relative to ``output_dir``)."""
    done: set[int] = set()
    for node in ast.walk(tree):  # breadth first: the top of a ``+`` chain comes before its parts
        if id(node) in done:
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) or isinstance(node, ast.JoinedStr):
            parts: list[ast.AST] = []
            stack = [node]
            while stack:  # flatten the chain, left to right
                part = stack.pop()
                if isinstance(part, ast.BinOp) and isinstance(part.op, ast.Add):
                    done.add(id(part))
                    stack += [part.right, part.left]
                else:
                    parts.append(part)
            if isinstance(node, ast.JoinedStr):
                parts = list(node.values)
            strings = [isinstance(p, ast.Constant) and isinstance(p.value, str) for p in parts]
            done.update(id(p) for p, is_string in zip(parts, strings) if is_string)
            leading = strings.index(False) if False in strings else len(parts)
            if leading:
                yield "".join(p.value for p in parts[:leading])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _expression_paths(expression: str) -> str | None:
    """An absolute path or patient identifier in the strings an expression starts values with."""
    try:
        tree = ast.parse(_REFERENCE.sub("__ref__", expression[1:]), mode="eval")
    except SyntaxError:
        return None  # not an expression MONAI could evaluate either; check_config names it
    return next((found for value in _string_values(tree) if (found := _text_findings(value))), None)


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
    if name.lower().endswith(".json"):
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
