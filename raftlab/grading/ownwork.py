"""Own work only: a submission's exercises must be its own code, not the library's.

raftlab contains a complete Raft: `raftlab.core.Replica` is the reference solution of every exercise.
So a submission could score full marks without writing anything, by inheriting the library's methods,
by copying them onto its class, or by calling them from its exercises. `review(cls)` looks for each of
these, exercise by exercise (the exercises are `skeleton.EXERCISES`, the one definition of what a
student writes), and returns what it refuses and what it flags:

- **refused** (the exercise's part scores 0, with the reason in the report):
  - *inherits*: the method the class uses is defined by a class of the library (`Replica`, a mutant,
    any raftlab class other than the skeleton), not by the submission;
  - *copies*: the method is the library's own function (or code object), assigned onto the class, in
    its body (``grant_vote = Replica.grant_vote``) or from outside it (a `setattr` loop); found on the
    class at run time, and in the submission's syntax tree (class-body assignments, `setattr` calls and
    ``Class.name = ...`` assignments whose value refers to the library, directly or through a function
    of the file); in a file, a method compiled elsewhere whose bytecode is the library's;
  - *calls*: the exercise calls the library's implementation of its own rule: ``super().grant_vote(m)``
    where the next class is the library's, ``Replica.grant_vote(self, m)``, ``getattr(Replica, name)``,
    a climb up ``__mro__``/``__bases__``, a library function of the same name held in a global, a closure
    or a default argument, or a library helper that the exercise's definition names as implementing that
    very rule (`Exercise.library`).
- **flagged** (a note for the instructor, no points lost): the exercise's code is the library's own up to
  names and formatting (the normalised syntax trees are equal: docstrings and annotations stripped, the
  function's own names renamed in order of appearance). Typing the reference out is not refused, since
  the course's own notebooks do it; the instructor decides.

Only a submission is reviewed: a subclass of `StudentReplica`, or a class of a notebook or script
(`__main__`). The library's classes, and the instructor's own subclasses of `Replica` (planted bugs,
tests), are graded as they are.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import functools
import inspect
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FunctionType, MappingProxyType, MethodType, ModuleType
from typing import Any

from ..core import Replica
from . import skeleton
from .skeleton import StudentReplica

LIBRARY = Path(__file__).resolve().parents[1]  # the raftlab package: its code is the library's


@dataclass
class OwnWork:
    """What `review` found: exercise name -> why it is refused, or why it is flagged."""

    refused: dict[str, str] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)


# ----- what is the library's ---------------------------------------------------------------------
def _library_module(name: str | None) -> bool:
    return name is not None and (name == "raftlab" or name.startswith("raftlab."))


def _unwrap(value: Any) -> Any:
    """The function behind a method, a static or class method, a partial or a wrapper."""
    for _ in range(20):
        if isinstance(value, staticmethod | classmethod | MethodType):
            value = value.__func__
        elif isinstance(value, functools.partial | functools.partialmethod):
            value = value.func
        elif getattr(value, "__wrapped__", None) is not None:
            value = value.__wrapped__
        else:
            break
    return value


def _library_code(code: CodeType) -> bool:
    try:
        return Path(code.co_filename).resolve().is_relative_to(LIBRARY)
    except (OSError, ValueError):
        return False


def _library_function(value: Any) -> bool:
    """Whether `value` is (a wrapper of) a function whose code is the library's: compiled from a file of
    the package, or one of the code objects of the library's rule methods (wherever it was loaded from)."""
    code = getattr(_unwrap(value), "__code__", None)
    if not isinstance(code, CodeType):
        return False
    return _library_code(code) or (code.co_name in skeleton.BY_NAME and any(
        getattr(c.__dict__.get(code.co_name), "__code__", None) is code for c in _solution_classes()))


def _library_solution(value: Any) -> bool:
    """Whether `value` holds the library's solutions: a library class with rule methods (`Replica`, a
    planted bug; not the skeleton), its ``__dict__``, or a library function named after an exercise or
    defined by such a class. (A message class, an enum or a module of the library is not a solution.)"""
    if isinstance(value, MappingProxyType):
        return any(isinstance(c, type) and c.__dict__ is value and _library_solution(c) for c in _solution_classes())
    if isinstance(value, type):
        return issubclass(value, Replica) and _library_module(value.__module__) and value is not StudentReplica
    if not _library_function(value):
        return False
    function = _unwrap(value)
    owner = getattr(function, "__qualname__", "").rpartition(".")[0]
    return getattr(function, "__name__", None) in skeleton.BY_NAME or any(
        c.__qualname__ == owner and c.__module__ == function.__module__ for c in _solution_classes())


def _solution_classes() -> list[type]:
    """The library's subclasses of `Replica` loaded so far (the core's, the planted bugs, ...)."""
    found: list[type] = []
    todo: list[type] = [Replica]
    while todo:
        c = todo.pop()
        if _library_module(c.__module__) and c is not StudentReplica:
            found.append(c)
        todo.extend(c.__subclasses__())
    return found


# the skeleton's blanks as the library defines them (a submission could replace them on StudentReplica)
_BLANKS = {name: value for name, value in vars(StudentReplica).items() if name in skeleton.BY_NAME}


def _skeleton(name: str, value: Any) -> bool:
    """The skeleton's own blank of exercise `name` (not a solution: it raises NotImplementedError)."""
    return _unwrap(value) is _BLANKS.get(name)


def _qualified(value: Any) -> str:
    value = _unwrap(value)
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', getattr(value, '__name__', '?'))}"


def is_submission(cls: type) -> bool:
    """Whether `cls` is reviewed: a subclass of `StudentReplica`, or a class of a notebook or script."""
    return issubclass(cls, StudentReplica) or (cls.__module__ == "__main__" and issubclass(cls, Replica))


# ----- a safe evaluation of names in the submission's namespace ------------------------------------
_MISSING = object()


def _evaluate(node: ast.AST, names: dict[str, Any]) -> Any:
    """The object a name, a dotted name, a constant subscript (``Replica.__dict__['x']``, ``vars(R)['x']``)
    or a ``getattr(obj, 'x')`` (or ``getattr(obj, name)``, `name` holding a string) refers to, looked up
    without running anything of the submission's (attributes of modules and classes only, read
    statically); `_MISSING` if it cannot be known."""
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        return getattr(builtins, node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        return _static_attribute(_evaluate(node.value, names), node.attr)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = _evaluate(node.value, names)
        if isinstance(base, dict | MappingProxyType):
            return base.get(node.slice.value, _MISSING)
        return _MISSING
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        key = node.args[1] if node.func.id == "getattr" and len(node.args) >= 2 else None
        attribute = key.value if isinstance(key, ast.Constant) else names.get(key.id) if isinstance(
            key, ast.Name) else None  # (a name held in a closure, say)
        if isinstance(attribute, str):
            return _static_attribute(_evaluate(node.args[0], names), attribute)
        if node.func.id == "vars" and len(node.args) == 1:
            base = _evaluate(node.args[0], names)
            return base.__dict__ if isinstance(base, type | ModuleType) else _MISSING
    return _MISSING


def _static_attribute(base: Any, name: str) -> Any:
    if not isinstance(base, type | ModuleType) or base is _MISSING:
        return _MISSING
    if name == "__dict__":
        return base.__dict__
    try:
        return inspect.getattr_static(base, name)
    except AttributeError:
        return _MISSING


def _names_of(function: Any) -> dict[str, Any]:
    """The names a function sees: its closure's, then its module's globals."""
    names = dict(getattr(function, "__globals__", {}) or {})
    code = getattr(function, "__code__", None)
    for var, cell in zip(code.co_freevars if code else (), getattr(function, "__closure__", None) or (), strict=False):
        with contextlib.suppress(ValueError):  # (an empty cell)
            names[var] = cell.cell_contents
    return names


# ----- the syntax tree of one function, and its normal form ------------------------------------------
def _function_tree(function: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a lambda's line, say, that is not a statement on its own
        try:
            tree = ast.parse("(" + source.strip().rstrip(",") + ")")
        except SyntaxError:
            return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return node
    return None


class _Canonical(ast.NodeTransformer):
    """Renames the function's own names (arguments, locals) in order of appearance; drops docstrings
    and annotations. Globals, attributes and constants are kept: they are what the code does."""

    def __init__(self, local: set[str]) -> None:
        self.local = local
        self.names: dict[str, str] = {}

    def rename(self, name: str) -> str:
        if name not in self.local:
            return name
        return self.names.setdefault(name, f"_v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(self.rename(node.id), node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.arg(self.rename(node.arg), None)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        if node.name:
            node.name = self.rename(node.name)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return ast.Pass()
        return self.visit(ast.Assign([node.target], node.value))


def _locals(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            found.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
    return found


def normalised(tree: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> str:
    """The function's syntax tree up to names and formatting: no docstring, no annotations, no
    decorators, its own names renamed in order of appearance (so a copy with other names, other
    layout, other comments or another docstring has the same normal form)."""
    body: list[ast.stmt] = list(tree.body) if isinstance(tree.body, list) else [ast.Return(tree.body)]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:] or [ast.Pass()]
    tree = copy.deepcopy(tree)
    body = copy.deepcopy(body)
    module = ast.Module(body=[ast.FunctionDef(name="_f", args=tree.args, body=body, decorator_list=[], returns=None)],
                        type_ignores=[])
    canonical = _Canonical(_locals(module) - {"_f"}).visit(module)
    return ast.dump(canonical, annotate_fields=False, include_attributes=False)


def _code_form(code: CodeType) -> tuple:
    """What a function's compiled code does, up to its local names, its layout and its docstring."""
    consts = tuple(_code_form(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    if consts and (consts[0] is None or isinstance(consts[0], str)):
        consts = consts[1:]
    return code.co_code, code.co_names, consts, code.co_argcount, code.co_kwonlyargcount, code.co_flags & 0xFFFF


@functools.cache
def _reference_form(name: str) -> str | None:
    tree = _function_tree(Replica.__dict__[name])
    return None if tree is None else normalised(tree)


# ----- the review --------------------------------------------------------------------------------
def review(cls: type) -> OwnWork:
    """What of `cls`'s exercises is refused (not its own work) or flagged (the library's code retyped),
    by exercise name."""
    found = OwnWork()
    for exercise in skeleton.EXERCISES:
        name = exercise.name
        owner = next((c for c in cls.__mro__ if name in c.__dict__), None)
        value = owner.__dict__[name] if owner is not None else None
        if owner is None or _skeleton(name, value):
            continue  # not written yet (the skeleton's blank)
        if owner is StudentReplica:  # the library's class itself was changed (by the submission)
            found.refused[name] = (f"{name}: the skeleton's own method (StudentReplica.{name}) was replaced by "
                                   f"{_qualified(value)}; write {name} in {cls.__name__}, not into the library")
            continue
        why = _refusal(cls, owner, name, value, exercise.rules, exercise.library)
        if why is not None:
            found.refused[name] = why
            continue
        function = _unwrap(value)
        tree = _function_tree(function)
        if tree is not None and normalised(tree) == _reference_form(name):
            found.flagged[name] = (f"{name} is the library's own code (raftlab.core.Replica.{name}) up to names and "
                                   f"formatting: a copy? (not refused; read it)")
        elif tree is None and isinstance(getattr(function, "__code__", None), CodeType) \
                and _code_form(function.__code__) == _code_form(Replica.__dict__[name].__code__):
            file = _file_of(owner)
            if file is not None and function.__code__.co_filename != file:  # a file's method, compiled elsewhere
                found.refused[name] = (f"{name} of {owner.__qualname__} is the library's own code compiled at run "
                                       f"time (from {function.__code__.co_filename!r}, not from {file}), "
                                       f"not written: write it yourself")
                continue
            found.flagged[name] = (f"{name} compiles to the library's own code (raftlab.core.Replica.{name}), and its "
                                   f"source cannot be read: a copy? (not refused; read it)")
    for name, why in _source_refusals(cls).items():
        found.refused.setdefault(name, why)
        found.flagged.pop(name, None)
    return found


def _refusal(cls: type, owner: type, name: str, value: Any, rules: str, helpers: tuple[str, ...]) -> str | None:
    """Why exercise `name` of `cls` (defined by `owner` as `value`) is not the submission's own work."""
    if _library_module(owner.__module__):
        return (f"{name} is inherited from {owner.__module__}.{owner.__qualname__}, the library's own implementation "
                f"of {rules}, not written in {cls.__name__}: write it yourself")
    if _library_function(value):
        return (f"{name} of {owner.__qualname__} is the library's own function {_qualified(value)}, copied onto the "
                f"class (by an assignment or setattr), not written: write it yourself")
    function = _unwrap(value)
    if not isinstance(function, FunctionType):
        return None
    return _calls(cls, owner, name, function, rules, helpers)


def _same_rule(name: str, value: Any) -> bool:
    """A library function implementing exercise `name` (the core's, a mutant's, ...), not the blank."""
    return _library_function(value) and not _skeleton(name, value)


def _calls(cls: type, owner: type, name: str, function: FunctionType, rules: str,
           helpers: tuple[str, ...]) -> str | None:
    """Why `function` (exercise `name`, defined by `owner`) calls the library's implementation of its rule."""
    names = _names_of(function)
    used = set(_code_names(function.__code__)) | set(function.__code__.co_freevars)
    held = [(f"the name {var}", value) for var, value in names.items() if var in used]
    held += [("a default argument", d) for d in (function.__defaults__ or ())]
    held += [("a default argument", d) for d in (function.__kwdefaults__ or {}).values()]
    for label, value in held:  # a library function of the same rule, kept in a global, a closure, a default
        if _same_rule(name, value) and getattr(_unwrap(value), "__name__", None) == name:
            return (f"{name} calls {_qualified(value)} (held in {label}), the library's own implementation of {rules}: "
                    f"write the rule yourself")
    after = _next_definition(cls, owner, name)
    tree = _function_tree(function)
    if tree is None:  # no source (exec'd code): what the bytecode names
        if name in used and "super" in used and after is not None and _same_rule(name, after):
            return f"{name} calls super().{name}, the library's own implementation of {rules}: write the rule yourself"
        for var in used:
            target = _static_attribute(names.get(var, _MISSING), name) if name in used else _MISSING
            if _same_rule(name, target):
                return (f"{name} calls {var}.{name}, the library's own implementation of {rules}: write the rule "
                        f"yourself")
        for helper in helpers:
            if helper in used:
                return (f"{name} calls the library's {helper}, which implements {rules} itself: write that rule "
                        f"yourself")
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in helpers:
            return (f"{name} calls the library's {ast.unparse(node)} (line {node.lineno} of the method), which "
                    f"implements {rules} itself: write that rule yourself")
        if isinstance(node, ast.Attribute) and node.attr == name:
            base = node.value
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                start = _evaluate(base.args[0], names) if base.args else owner  # super(C, self): after C
                after = _next_definition(cls, start, name) if isinstance(start, type) else None
                if after is not None and _same_rule(name, after):
                    return (f"{name} calls {ast.unparse(node)}, which is {_qualified(after)}, the library's own "
                            f"implementation of {rules}: write the rule yourself")
                continue
            if any(isinstance(n, ast.Attribute) and n.attr in _HIERARCHY for n in ast.walk(base)):
                return (f"{name} calls {ast.unparse(node)}: it climbs the class hierarchy to the library's own "
                        f"implementation of {rules} (Replica.{name}): write the rule yourself")
        if isinstance(node, ast.Attribute | ast.Subscript | ast.Call | ast.Name) and _same_rule(
                name, target := _evaluate(node, names)) and getattr(_unwrap(target), "__name__", None) == name:
            return (f"{name} calls {ast.unparse(node)}, which is {_qualified(target)}, the library's own "
                    f"implementation of {rules}: write the rule yourself")
    return None


_HIERARCHY = {"__mro__", "__bases__", "__base__", "mro"}  # how code climbs to a base class it does not name


def _code_names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_names(const)


def _next_definition(cls: type, owner: type, name: str) -> Any:
    """What ``super().name`` in `owner`'s method resolves to, for an instance of `cls`."""
    mro = cls.__mro__
    for c in mro[mro.index(owner) + 1:] if owner in mro else ():
        if name in c.__dict__:
            return c.__dict__[name]
    return None


# ----- the submission's file: copies made outside the methods ---------------------------------------
def _file_of(cls: type) -> str | None:
    """The file that defines `cls` at its top level (a submission's file), if there is one."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) and getattr(module, cls.__name__, None) is cls else None


def _source_refusals(cls: type) -> dict[str, str]:
    """Copies of library methods onto exercise names that the submission's syntax tree shows: an
    assignment in a class body (``grant_vote = Replica.grant_vote``), ``Class.grant_vote = ...``, or a
    ``setattr(Class, name, ...)`` whose value refers to the library (a setattr with a computed name
    refuses every exercise of that class not written in its body)."""
    module, path = sys.modules.get(cls.__module__), _file_of(cls)
    if module is None or path is None or _library_module(cls.__module__):
        return {}
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    names, exercises = vars(module), {e.name for e in skeleton.EXERCISES}
    mine = [c for c in cls.__mro__ if c.__module__ == cls.__module__]
    bodies = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    helpers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    found: dict[str, str] = {}

    def refers_to_library(value: ast.AST) -> bool:
        seen: set[str] = set()
        todo = [value]
        while todo:  # the expression, and the submission's own module-level functions it calls
            for n in ast.walk(todo.pop()):
                if isinstance(n, ast.Name | ast.Attribute | ast.Subscript | ast.Call) \
                        and _library_solution(_evaluate(n, names)):
                    return True
                if isinstance(n, ast.Name) and n.id in helpers and n.id not in seen:
                    seen.add(n.id)
                    todo.append(helpers[n.id])
        return False

    def written_in_body(c: type, name: str) -> bool:
        body = bodies.get(c.__name__)
        return body is not None and any(isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == name
                                        for s in body.body)

    for c in mine:
        body = bodies.get(c.__name__)
        for statement in body.body if body is not None else ():
            targets = statement.targets if isinstance(statement, ast.Assign) else \
                [statement.target] if isinstance(statement, ast.AnnAssign | ast.AugAssign) else []
            value = getattr(statement, "value", None)
            for target in targets:
                if isinstance(target, ast.Name) and target.id in exercises and value is not None \
                        and refers_to_library(value):
                    found[target.id] = (f"{target.id} is assigned in the body of {c.__name__} (line "
                                        f"{statement.lineno}: {ast.unparse(statement)}) from the library's code, not "
                                        f"written: write it yourself")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and len(node.args) == 3 and _evaluate(node.args[0], names) in mine \
                and refers_to_library(node.args[2]):
            target_cls = _evaluate(node.args[0], names)
            key = node.args[1]
            affected = [key.value] if isinstance(key, ast.Constant) and key.value in exercises else [
                e for e in sorted(exercises) if e in target_cls.__dict__ and not written_in_body(target_cls, e)]
            for name in affected:
                found.setdefault(name, f"{name} is set on {target_cls.__name__} by setattr (line {node.lineno}: "
                                       f"{ast.unparse(node)}) from the library's code, not written: write it yourself")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in exercises \
                        and _evaluate(target.value, names) in mine and refers_to_library(node.value):
                    found.setdefault(target.attr, f"{target.attr} is assigned onto the class (line {node.lineno}: "
                                                  f"{ast.unparse(node)}) from the library's code, not written: write "
                                                  f"it yourself")
    return found
