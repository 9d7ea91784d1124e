"""Substitutions: the ``$(name arg ...)`` grammar of launch/frontend/grammar.lark, and one table entry per
substitution with its arity, how it is performed and how --show-args describes it (upstream keeps the three
together in each Substitution class).

A template is a list of text and :class:`Subst` parts; :meth:`SubstitutionContext.resolve` turns it into a
string. Every failure is a ValueError; the parser adds file, line and attribute.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass

from .ament_index import find_executable_in_package, get_package_prefix, get_package_share_directory
from .values import evaluate_condition_expression, to_bool


class Subst:
    """One ``$(name arg ...)`` in a template; each argument is a template itself."""

    __slots__ = ("name", "args")

    def __init__(self, name, args):
        self.name = name
        self.args = args

    def __repr__(self):
        return f"Subst({self.name!r}, {self.args!r})"


Template = list[str | Subst]


class SubstitutionContext:
    """The state substitutions read (and $(anon) writes): launch configurations, environment, current file."""

    def __init__(self, environ: dict[str, str]):
        self.base_env = dict(environ)  # the environment launch started with: package lookups use it
        self.env = dict(environ)
        self.configs: dict[str, object] = {}
        self.file_stack: list[str] = []

    def resolve(self, t: Template) -> str:
        return "".join(p if isinstance(p, str) else SUBSTITUTIONS[p.name].perform(self, p.args) for p in t)

    def internal(self, name: str, kind: type, keeper: str):
        """The launch configuration ``name`` the runner keeps ``keeper``'s state in (a ``kind``), or ValueError
        when a <let>, <arg> or command line argument replaced it with text."""
        value = self.configs.get(name, kind())
        if not isinstance(value, kind):
            raise ValueError(
                f"launch configuration '{name}' holds {value!r}, not what {keeper} keeps there "
                "(a <let>, <arg> or command line argument of that name replaced it)"
            )
        return value


@dataclass(frozen=True)
class Substitution:
    arity: tuple[int, int | None]  # (least, most) arguments; None = unbounded
    perform: Callable[[SubstitutionContext, list[Template]], str]
    describe: Callable[[str, list[Template]], str]  # (name, args) -> text for --show-args


def describe(t: Template) -> str:
    """Like Substitution.describe() joined with ' + ' (used by --show-args)."""
    return " + ".join(f"'{p}'" if isinstance(p, str) else SUBSTITUTIONS[p.name].describe(p.name, p.args) for p in t)


def _as_call(name: str, args: list[Template]) -> str:
    return f"{name}(" + " ".join(describe(a) for a in args) + ")"


def _as_upstream_class(class_name: str):
    """Described with ros2 launch's class name and the name argument only, e.g. LaunchConfig('robot')."""
    return lambda _name, args: _as_call(class_name, args[:1])


def _lookup(find, *args) -> str:
    """An ament index lookup whose LookupError is a substitution error."""
    try:
        return find(*args)
    except LookupError as e:
        raise ValueError(str(e)) from None


def _perform_var(ctx: SubstitutionContext, args: list[Template]) -> str:
    name = ctx.resolve(args[0])
    if name in ctx.configs:
        return str(ctx.configs[name])
    if len(args) > 1:
        return ctx.resolve(args[1])
    raise ValueError(f"launch configuration '{name}' does not exist")


def _perform_env(ctx: SubstitutionContext, args: list[Template]) -> str:
    name = ctx.resolve(args[0])
    if name in ctx.env:
        return ctx.env[name]
    if len(args) > 1:
        return ctx.resolve(args[1])
    raise ValueError(f"environment variable '{name}' does not exist")


def _perform_find_pkg_share(ctx: SubstitutionContext, args: list[Template]) -> str:
    return _lookup(get_package_share_directory, ctx.resolve(args[0]), ctx.base_env)


def _perform_find_pkg_prefix(ctx: SubstitutionContext, args: list[Template]) -> str:
    return _lookup(get_package_prefix, ctx.resolve(args[0]), ctx.base_env)


def _perform_exec_in_pkg(ctx: SubstitutionContext, args: list[Template]) -> str:
    exe, pkg = ctx.resolve(args[0]), ctx.resolve(args[1])
    return _lookup(find_executable_in_package, exe, pkg, ctx.base_env)


def _perform_find_exec(ctx: SubstitutionContext, args: list[Template]) -> str:
    name = ctx.resolve(args[0])
    found = shutil.which(name, path=ctx.env.get("PATH", os.defpath))
    if found is None:
        raise ValueError(f"executable '{name}' not found on the PATH")
    return found


def _perform_eval(ctx: SubstitutionContext, args: list[Template]) -> str:
    expr = ctx.resolve(args[0])
    if len(args) > 1:
        modules_text = ctx.resolve(args[1])
        call = f"$(eval {expr!r} {modules_text!r})"
        modules = [m.strip() for m in modules_text.split(",") if m.strip()]
    else:
        call = f"$(eval {expr!r})"
        modules = ["math"]
    local = {}
    # SystemExit too: exit() in the expression (or a module's import) would end the runner without a word
    for mname in modules:
        try:
            mod = importlib.import_module(mname)
        except (Exception, SystemExit) as e:
            raise ValueError(f"{call}: cannot import module {mname!r}: {type(e).__name__}: {e}") from e
        if mname == "math":
            local.update(vars(mod))
        local[mname] = mod
    try:
        result = str(eval(expr, {}, local))
    except (Exception, SystemExit) as e:
        raise ValueError(f"{call}: {type(e).__name__}: {e}") from e
    if "\0" in result:
        # no argument, path or environment value can hold one: starting the process would fail
        raise ValueError(f"{call}: the result contains a NUL character")
    return result


def _boolean(name: str, combine: Callable[[list[bool]], bool]):
    """$(not), $(and), ...: every argument a bool by yaml rules, the result 'true' or 'false'."""

    def perform(ctx: SubstitutionContext, args: list[Template]) -> str:
        values = []
        for arg in args:
            v = ctx.resolve(arg)
            try:
                values.append(to_bool(v))
            except (TypeError, ValueError) as e:
                raise ValueError(f"$({name}): {e}") from e
        return str(combine(values)).lower()

    return perform


def _str_is_bool(s: str) -> bool:
    return s.lower() in ("true", "false", "1", "0")


def _str_is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _equals(ctx: SubstitutionContext, args: list[Template]) -> bool:
    """Compared as bools if both read as bools, else as numbers if both are numbers, else as text."""
    left, right = ctx.resolve(args[0]), ctx.resolve(args[1])
    if _str_is_bool(left) and _str_is_bool(right):
        return (left.lower() in ("true", "1")) == (right.lower() in ("true", "1"))
    if _str_is_float(left) and _str_is_float(right):
        return math.isclose(float(left), float(right))
    return left == right


def _perform_equals(ctx: SubstitutionContext, args: list[Template]) -> str:
    return str(_equals(ctx, args)).lower()


def _perform_not_equals(ctx: SubstitutionContext, args: list[Template]) -> str:
    return str(not _equals(ctx, args)).lower()


def _perform_if(ctx: SubstitutionContext, args: list[Template]) -> str:
    cond = evaluate_condition_expression(ctx.resolve(args[0]))
    return ctx.resolve(args[1] if cond else args[2])


def _perform_dirname(ctx: SubstitutionContext, args: list[Template]) -> str:
    return os.path.dirname(ctx.file_stack[-1])


def _perform_filename(ctx: SubstitutionContext, args: list[Template]) -> str:
    return ctx.file_stack[-1]


def _perform_anon(ctx: SubstitutionContext, args: list[Template]) -> str:
    name = ctx.resolve(args[0])
    anon = dict(ctx.internal("anon", dict, "$(anon)"))
    if name not in anon:
        raw = f"{name}_{socket.gethostname()}_{os.getpid()}_{random.randint(0, 2**63)}"
        anon[name] = raw.replace(".", "_").replace("-", "_").replace(":", "_")
        ctx.configs["anon"] = anon
    return anon[name]


SUBSTITUTIONS: dict[str, Substitution] = {
    "var": Substitution((1, 2), _perform_var, _as_upstream_class("LaunchConfig")),
    "env": Substitution((1, 2), _perform_env, _as_upstream_class("EnvVar")),
    "find-pkg-share": Substitution((1, 1), _perform_find_pkg_share, _as_call),
    "find-pkg-prefix": Substitution((1, 1), _perform_find_pkg_prefix, _as_call),
    "exec-in-pkg": Substitution((2, 2), _perform_exec_in_pkg, _as_call),
    "find-exec": Substitution((1, 1), _perform_find_exec, _as_call),
    "eval": Substitution((1, 2), _perform_eval, _as_call),
    "not": Substitution((1, 1), _boolean("not", lambda v: not v[0]), _as_call),
    "and": Substitution((2, 2), _boolean("and", lambda v: v[0] and v[1]), _as_call),
    "or": Substitution((2, 2), _boolean("or", lambda v: v[0] or v[1]), _as_call),
    "any": Substitution((0, None), _boolean("any", any), _as_call),
    "all": Substitution((0, None), _boolean("all", all), _as_call),
    "equals": Substitution((2, 2), _perform_equals, _as_call),
    "not-equals": Substitution((2, 2), _perform_not_equals, _as_call),
    "dirname": Substitution((0, 0), _perform_dirname, _as_call),
    "filename": Substitution((0, 0), _perform_filename, _as_call),
    "anon": Substitution((1, 1), _perform_anon, _as_call),
    "if": Substitution((3, 3), _perform_if, _as_call),
}


# --------------------------------------------------------------------------------------------
# Scanner: text -> template
# --------------------------------------------------------------------------------------------

_ID_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_CHARS = _ID_START | set("0123456789_-")
# Scanning and resolving recurse per level: far below Python's recursion limit, far above any real file.
MAX_NESTING = 50


class _SubstParser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.n = len(text)
        self.nesting = 0

    def fail(self, msg):
        raise ValueError(f"{msg} at column {self.i + 1} of {self.s!r}")

    def at_subst(self):
        return self.s.startswith("$(", self.i)

    def template(self) -> Template:
        return self._scan("", None)

    def _scan(self, stops, mode, closing=None) -> Template:
        """Text and substitutions up to a character of ``stops`` (left unread), the ``closing`` quote (read), or
        the end of the input (an error while a ``closing`` quote is awaited). ``mode`` is passed on to nested
        substitutions. A backslash escapes the next character; a '$' not starting '$(' is text."""
        start = self.i
        parts: Template = []
        buf: list[str] = []
        while True:
            if self.i >= self.n:
                if closing is None:
                    break
                self.i = start - 1
                self.fail("unterminated quoted string")
            c = self.s[self.i]
            if c == closing:
                self.i += 1
                break
            if c == "\\" and self.i + 1 < self.n:
                buf.append(self.s[self.i + 1])
                self.i += 2
            elif self.at_subst():
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(self.substitution(mode))
            elif c in stops:
                break
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append("".join(buf))
        return parts

    def substitution(self, mode) -> Subst:
        start = self.i
        if self.nesting >= MAX_NESTING:
            self.fail(f"substitutions nested more than {MAX_NESTING} deep")
        self.nesting += 1
        self.i += 2  # '$('
        j = self.i
        if j >= self.n or self.s[j] not in _ID_START:
            self.fail('expected a substitution name after "$("')
        while j < self.n and self.s[j] in _ID_CHARS:
            j += 1
        name = self.s[self.i : j]
        self.i = j
        args: list[Template] = []
        if self.i < self.n and self.s[self.i] == " ":
            while True:
                self.i += 1  # the single separating space
                args.append(self.value(mode))
                if self.i < self.n and self.s[self.i] == " ":
                    continue
                break
        if self.i >= self.n or self.s[self.i] != ")":
            self.fail(f"unterminated substitution starting at column {start + 1}")
        self.i += 1
        self.nesting -= 1
        if name not in SUBSTITUTIONS:
            raise ValueError(f"unknown substitution '$({name} ...)' in {self.s!r}")
        lo, hi = SUBSTITUTIONS[name].arity
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
            raise ValueError(f"substitution '{name}' expects {want} argument(s), got {len(args)} in {self.s!r}")
        return Subst(name, args)

    def value(self, mode) -> Template:
        if self.i < self.n and mode is None and self.s[self.i] in "'\"":
            return self.quoted(self.s[self.i])
        parts = self._scan(" ()" + ("'\"" if mode is None else mode), mode)
        if not parts:
            self.fail("empty substitution argument")
        return parts

    def quoted(self, q) -> Template:
        self.i += 1  # the opening quote
        return self._scan("", q, closing=q) or [""]


def parse_substitution(text: str) -> Template:
    """Parse a launch frontend string into text and substitutions (raises ValueError)."""
    if not text:
        return [""]
    return _SubstParser(text).template()
