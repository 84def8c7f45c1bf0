"""The lstmlib a graded kernel holds: an edition per assignment, holding only
what its notebook hands out.

A graded kernel is hostile: anything importable in it can answer for the
student (``lstmlib.rnn.rnn_forward`` for exercise 1, ``lstmlib.analysis``
for exercise 3), and any module in it can be rebound. So the sandbox gives
it, instead of the lstmlib package, the folder :func:`build` writes: a
package ``lstmlib/`` made from the real sources by a tree-shaking pass over
their syntax trees. For each module of the assignment's ``hands_out``
(:mod:`lstmlib.grading.assignments`) it keeps the imports and top-level
definitions of the names handed out and, transitively, of every top-level
name they use in that module or import from another lstmlib module (which
gets its own shaken copy); the rest of the module is dropped. Added to that:

* ``lstmlib/__init__.py``: the package-level names handed out (``lstmlib.LSTM``
  in exercises 3 and 8), and an import hook that refuses any other lstmlib
  module, and torch, with a message naming the assignment;
* each shaken module ends with a ``__getattr__`` that says the same of a
  name it no longer holds (``from lstmlib.lstm import lstm_forward`` in 5);
* ``lstmlib/selfcheck/``: the kernel's side of the grading protocol
  (``_harness``, the calls the grader asks for, and ``_codec``, plain data)
  copied as they are, and a ``checks`` whose functions say that the
  self-checks run at home (the grader replaces those cells when it grades);
* ``pins`` applied: a pinned argument is removed from the function's
  signature and set to its value at the top of its body (exercise 7's
  ``lstm_forward`` has no ``reverse``).

Never in an edition, whatever the closure says: the parts' own functions
wherever lstmlib defines them, the assignment's ``withheld`` references,
the modules of :data:`NEVER` and anything importing torch. A handed-out
name whose closure needs one of them is refused with a ValueError naming
both: a wrong manifest fails when the edition is built, not in a student's
notebook. The output is deterministic (its hash is in ``EDITION.json``).
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import json
import shutil
import symtable
from pathlib import Path

from . import assignments

PACKAGE = "lstmlib"
PACKAGE_DIR = Path(__file__).resolve().parent.parent        # lstmlib/

#: modules no edition holds (what decides grades, what imports torch, the
#: references of analyses and kernels); the selfcheck package is written anew
NEVER = ("lstmlib.grading", "lstmlib.analysis", "lstmlib.kernels", "lstmlib.interop",
         "lstmlib.bench", "lstmlib.selfcheck")
#: top-level packages no edition imports
NEVER_IMPORTED = ("torch",)
#: the kernel's side of the grading protocol, copied as is
PROTOCOL = ("_harness.py", "_codec.py")
MARKER = "EDITION.json"

_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__spec__", "__package__",
                      "__loader__", "__builtins__", "__path__", "__annotations__",
                      "__dict__", "__class__", "__qualname__", "__module__"})


def _under(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


_NOT_HANDED_OUT = ("{name} is not handed out in a graded notebook of {assignment}: "
                   "write it yourself (at home the whole package is available)")
_NOT_AVAILABLE = ("{name} is not available in a graded notebook of {assignment}: "
                  "write the computation with numpy (at home it may be installed)")


def _message(what, assignment):
    template = _NOT_AVAILABLE if _under(what, NEVER_IMPORTED) else _NOT_HANDED_OUT
    return template.format(name=what, assignment=assignment)


# ---------------------------------------------------------------------------
# one source module, read and indexed

def _module_path(module):
    parts = module.split(".")[1:]
    folder = PACKAGE_DIR.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py", True
    if parts and folder.with_suffix(".py").is_file():
        return folder.with_suffix(".py"), False
    return None, False


def _is_module(module):
    return _module_path(module)[0] is not None


def _submodules(package):
    folder = _module_path(package)[0].parent
    return sorted({p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
                  | {p.parent.name for p in folder.glob("*/__init__.py")})


def _target_names(node):
    """Names a binding target binds (``a``, ``a, b``, ``[a, *b]``)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _target_names(elt)]
    if isinstance(node, ast.Starred):
        return _target_names(node.value)
    return []


def _base_name(node):
    """``X`` of a target ``X.attr`` or ``X[...]`` (an update of ``X``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Source:
    """A module of lstmlib: its statements, what each binds and uses."""

    def __init__(self, module):
        path, is_package = _module_path(module)
        if path is None:
            raise ValueError(f"hands_out: expected modules of lstmlib, received {module!r} "
                             f"(no such module)")
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.is_package = is_package
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.splitlines(keepends=True)
        self.tree = ast.parse(self.text, str(path))
        self.table = symtable.symtable(self.text, str(path), "exec")
        self.future_annotations = any(
            isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"
            and any(a.name == "annotations" for a in stmt.names) for stmt in self.tree.body)
        self.binds = {}         # name -> indices of the statements binding it
        self.updates = {}       # name -> indices of statements like ``X.__doc__ = ...``
        self.imports = {}       # alias -> (index, "module" | "name", module, name)
        for i, stmt in enumerate(self.tree.body):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for alias, entry in self._import_aliases(stmt):
                    self.imports[alias] = (i, *entry)
                    self.binds.setdefault(alias, []).append(i)
                continue
            for name in self._bound(stmt):
                self.binds.setdefault(name, []).append(i)
            targets = getattr(stmt, "targets", None) or \
                ([stmt.target] if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else [])
            for t in targets:
                base = _base_name(t)
                if base is not None and not isinstance(t, ast.Name):
                    self.updates.setdefault(base, []).append(i)

    # -- imports ----------------------------------------------------------
    def resolve(self, level, module):
        """The absolute name of ``from <level dots><module> import ...``."""
        if not level:
            return module or ""
        base = self.package.split(".")
        if level > 1:
            base = base[:-(level - 1)]
        return ".".join(base + ([module] if module else []))

    def _import_aliases(self, stmt):
        """[(alias, ("module", module, None) | ("name", module, name))]."""
        out = []
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    out.append((a.asname, ("module", a.name, None)))
                else:
                    top = a.name.partition(".")[0]
                    out.append((top, ("module", top, None)))
            return out
        source = self.resolve(stmt.level, stmt.module)
        for a in stmt.names:
            if a.name == "*":
                raise ValueError(f"{self.module}: 'from {source} import *' cannot be shaken")
            alias = a.asname or a.name
            sub = f"{source}.{a.name}"
            if _under(source, (PACKAGE,)) and _is_module(sub):
                out.append((alias, ("module", sub, None)))
            else:
                out.append((alias, ("name", source, a.name)))
        return out

    # -- bindings and uses ------------------------------------------------
    @staticmethod
    def _bound(stmt):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return [stmt.name]
        if isinstance(stmt, ast.Assign):
            return [n for t in stmt.targets for n in _target_names(t)]
        if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            return _target_names(stmt.target)
        if isinstance(stmt, ast.Expr):
            return []
        # if / try / for / with at the top level: whatever they bind
        names = []
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.append(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
        return names

    def _table_globals(self, table):
        names = set()
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced():
                names.add(sym.get_name())
        for child in table.get_children():
            names |= self._table_globals(child)
        return names

    def uses(self, i):
        """Global names statement ``i`` uses, and the lstmlib imports
        inside its functions: (names, [(alias, entry)], attribute uses)."""
        stmt = self.tree.body[i]
        names = set()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # evaluated where the statement runs: decorators, defaults, bases
            outer = list(stmt.decorator_list)
            if isinstance(stmt, ast.ClassDef):
                outer += stmt.bases + [k.value for k in stmt.keywords]
            else:
                a = stmt.args
                outer += a.defaults + [d for d in a.kw_defaults if d is not None]
                if not self.future_annotations:
                    outer += [arg.annotation for arg in
                              a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]
                              if arg is not None and arg.annotation is not None]
                    outer += [stmt.returns] if stmt.returns is not None else []
            for node in outer:
                names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            tables = [t for t in self.table.get_children()
                      if t.get_name() == stmt.name and t.get_lineno() == stmt.lineno]
            if len(tables) != 1:
                raise ValueError(f"{self.module}: the scope of {stmt.name} (line "
                                 f"{stmt.lineno}) cannot be told apart")
            names |= self._table_globals(tables[0])
        else:
            # what the statement reads, less what its comprehensions and
            # lambdas bind for themselves
            local = set()
            for node in ast.walk(stmt):
                if isinstance(node, ast.comprehension):
                    local |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
                elif isinstance(node, ast.Lambda):
                    a = node.args
                    local |= {arg.arg for arg in a.posonlyargs + a.args + a.kwonlyargs
                              + [a.vararg, a.kwarg] if arg is not None}
            names = {n.id for n in ast.walk(stmt)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - local
        inner = []
        for node in ast.walk(stmt):
            if node is not stmt and isinstance(node, (ast.Import, ast.ImportFrom)):
                inner.extend(self._import_aliases(node))
        attributes = {}
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                attributes.setdefault(node.value.id, set()).add(node.attr)
        bare = set()
        attr_bases = {id(node.value) for node in ast.walk(stmt)
                      if isinstance(node, ast.Attribute)}
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and id(node) not in attr_bases:
                bare.add(node.id)
        return names, inner, attributes, bare

    def segment(self, i):
        stmt = self.tree.body[i]
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        return "".join(self.lines[first - 1:stmt.end_lineno])


# ---------------------------------------------------------------------------
# the closure of what an assignment hands out

class _Shaker:
    def __init__(self, a):
        self.a = a
        self.graded = {f for p in a.parts for f in p.functions}
        self.sources = {}
        self.keep = {}          # module -> set of statement indices
        self.aliases = {}       # module -> set of import aliases kept
        self.names = {}         # module -> names kept (for the messages)
        self.why = {}           # (module, name) -> (module, name) that needs it
        self.todo = []
        for module, names in a.hands_out.items():
            if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"hands_out[{module!r}] of {a.name}: expected a tuple of "
                                 f"names, received {names!r}")
            for name in names:
                self.need(module, name, None)
        self.run()

    def source(self, module):
        if module not in self.sources:
            self.sources[module] = _Source(module)
            self.keep[module] = set()
            self.aliases[module] = set()
            self.names[module] = set()
        return self.sources[module]

    def chain(self, key):
        out = []
        while key is not None:
            out.append(".".join(k for k in key if k))
            key = self.why.get(key)
        return " <- ".join(out)

    def refuse(self, what, key, because):
        """``because`` says it of ``{}``: "no graded kernel holds {}"."""
        if key is None:
            raise ValueError(f"hands_out of {self.a.name}: {what} is handed out, but "
                             + because.format("it"))
        raise ValueError(f"hands_out of {self.a.name}: {self.chain(key)} needs {what}, "
                         f"but " + because.format("it"))

    def forbidden(self, module, name, parent):
        what = f"{module}.{name}" if name else module
        if _under(module, NEVER):
            self.refuse(what, parent, "no graded kernel holds {}")
        for w in self.a.withheld:
            if what == w or _under(module, (w,)):
                self.refuse(what, parent, f"{self.a.name} withholds {{}} ({w})")
        if name in self.graded:
            self.refuse(what, parent, f"{{}} is the reference of a function "
                                      f"{self.a.name} grades")

    def need(self, module, name, parent):
        """``module.name`` (``name`` None: the module itself) goes in."""
        if not _under(module, (PACKAGE,)):
            if _under(module, NEVER_IMPORTED):
                self.refuse(module, parent, "no graded kernel imports {}")
            return
        key = (module, name)
        if key in self.why:
            return
        self.forbidden(module, name, parent)
        self.why[key] = parent
        self.source(module)
        # a module's packages are imported with it
        package = module.rpartition(".")[0]
        if package:
            self.need(package, None, key)
        if name is not None:
            self.todo.append(key)

    def run(self):
        while self.todo:
            module, name = self.todo.pop(0)
            self.take(module, name)

    def take(self, module, name):
        src = self.source(module)
        key = (module, name)
        self.names[module].add(name)
        if name in src.imports:
            self.aliases[module].add(name)
            _, kind, target, orig = src.imports[name]
            self.need(target, orig if kind == "name" else None, key)
            return
        if name not in src.binds:
            if src.is_package and _is_module(f"{module}.{name}"):
                self.need(f"{module}.{name}", None, key)
                return
            raise ValueError(f"hands_out of {self.a.name}: {self.chain(key)}: {module} has "
                             f"no top-level name {name!r}")
        for i in src.binds[name] + src.updates.get(name, []):
            if i in self.keep[module]:
                continue
            self.keep[module].add(i)
            self.take_uses(src, i, key)

    def take_uses(self, src, i, key):
        names, inner, attributes, bare = src.uses(i)
        for alias, (kind, target, orig) in inner:     # imports inside functions
            if kind == "name":
                self.need(target, orig, key)
            else:
                self.need(target, None, key)
                for attr in sorted(attributes.get(alias, ())):
                    if _under(target, (PACKAGE,)) and not _is_module(f"{target}.{attr}"):
                        self.need(target, attr, key)
        for n in sorted(names):
            if n in src.imports:
                self.need(src.module, n, key)
                _, kind, target, _orig = src.imports[n]
                if kind == "module" and _under(target, (PACKAGE,)):
                    if n in bare:
                        self.refuse(f"the whole module {target}", key,
                                    "{} cannot be shaken (use its names by attribute)")
                    for attr in sorted(attributes.get(n, ())):
                        if not _is_module(f"{target}.{attr}"):
                            self.need(target, attr, key)
            elif n in src.binds:
                self.need(src.module, n, key)
            elif not (hasattr(builtins, n) or n in _DUNDERS):
                raise ValueError(f"hands_out of {self.a.name}: {self.chain(key)} uses {n!r}, "
                                 f"which {src.module} does not define at its top level")


def _checks_parts(a):
    """The self-check functions of the assignment's parts (``checks.<part>``)."""
    return tuple(dict.fromkeys(p.check.rpartition(".")[2] for p in a.parts))


# ---------------------------------------------------------------------------
# writing the shaken modules

def _pin(fn, pins, where):
    """``fn`` (a FunctionDef) without the pinned arguments, each assigned its
    value at the top of the body."""
    fn = ast.parse(ast.unparse(fn)).body[0]     # a copy
    a = fn.args
    for arg, value in pins.items():
        if not isinstance(value, (type(None), bool, int, float, str)):
            raise ValueError(f"pins[{where!r}][{arg!r}]: expected a constant, "
                             f"received {value!r}")
        positional = a.posonlyargs + a.args
        names = [p.arg for p in positional]
        if arg in names:
            k = names.index(arg)
            first_default = len(positional) - len(a.defaults)
            if k >= first_default:
                del a.defaults[k - first_default]
            if k < len(a.posonlyargs):
                del a.posonlyargs[k]
            else:
                del a.args[k - len(a.posonlyargs)]
        elif arg in [p.arg for p in a.kwonlyargs]:
            k = [p.arg for p in a.kwonlyargs].index(arg)
            del a.kwonlyargs[k]
            del a.kw_defaults[k]
        else:
            raise ValueError(f"pins[{where!r}]: expected an argument of {fn.name}, "
                             f"received {arg!r}")
        doc = 1 if (fn.body and isinstance(fn.body[0], ast.Expr)
                    and isinstance(fn.body[0].value, ast.Constant)
                    and isinstance(fn.body[0].value.value, str)) else 0
        fn.body.insert(doc, ast.Assign(targets=[ast.Name(arg, ast.Store())],
                                       value=ast.Constant(value), lineno=0))
    return ast.unparse(ast.fix_missing_locations(fn)) + "\n"


def _withheld_hook(names, assignment):
    listed = "".join(f"    {n!r},\n" for n in sorted(names))
    return (
        "\n\n# What this edition does not hold: a message naming the assignment (an\n"
        "# ImportError, so that 'from ... import' shows it, not a bare AttributeError)\n"
        f"__lstmlib_withheld__ = frozenset({{\n{listed}}})\n\n\n"
        "def __getattr__(name):\n"
        "    if name in __lstmlib_withheld__:\n"
        f"        raise ImportError({_NOT_HANDED_OUT!r}.format(\n"
        f"            name=f'{{__name__}}.{{name}}', assignment={assignment!r}), name=__name__)\n"
        "    raise AttributeError(f\"module {__name__!r} has no attribute {name!r}\")\n")


def _header(module, a):
    return (f"# The kernel edition of {module} for {a.name}: only what its notebook\n"
            f"# hands out (written by lstmlib.grading.kernel_edition; at home the\n"
            f"# whole package is available).\n")


def _check_pinned_calls(shaker):
    """Refuse an edition whose own code passes a pinned argument (it would
    fail with a TypeError in the student's kernel)."""
    for key, pins in shaker.a.pins.items():
        module, _, fn = key.rpartition(".")
        src = shaker.sources[module]
        defs = [s for s in src.tree.body if isinstance(s, ast.FunctionDef) and s.name == fn]
        positional = [p.arg for p in defs[0].args.posonlyargs + defs[0].args.args] if defs else []
        for mod in sorted(shaker.keep):
            for i in sorted(shaker.keep[mod]):
                stmt = shaker.sources[mod].tree.body[i]
                if mod == module and stmt in defs:
                    continue
                for node in ast.walk(stmt):
                    if not isinstance(node, ast.Call):
                        continue
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                    if name != fn:
                        continue
                    passed = {k.arg for k in node.keywords} | set(positional[:len(node.args)])
                    for arg in sorted(set(pins) & passed):
                        raise ValueError(
                            f"pins of {shaker.a.name}: {mod} (line {node.lineno}) passes "
                            f"{arg} to {key}, whose edition has no {arg}")


def _alias(stmt, name):
    if isinstance(stmt, ast.Import):
        return name.asname or name.name.partition(".")[0]
    return name.asname or name.name


def _shaken_text(shaker, module, modules, docstring=True):
    a = shaker.a
    src = shaker.sources[module]
    pins = {k.rpartition(".")[2]: v for k, v in a.pins.items()
            if k.rpartition(".")[0] == module}
    out = [_header(module, a)] if docstring else []
    body = src.tree.body
    for i, stmt in enumerate(body):
        is_doc = i == 0 and isinstance(stmt, ast.Expr) and isinstance(
            getattr(stmt, "value", None), ast.Constant) and isinstance(stmt.value.value, str)
        if is_doc or (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            if docstring or not is_doc:
                out.append(src.segment(i))
            continue
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            kept = [n for n in stmt.names if _alias(stmt, n) in shaker.aliases[module]]
            if not kept:
                continue
            if len(kept) == len(stmt.names):
                out.append(src.segment(i))
            else:
                node = type(stmt)(**{**{f: getattr(stmt, f) for f in stmt._fields},
                                     "names": kept})
                out.append(ast.unparse(node) + "\n")
            continue
        if i not in shaker.keep[module]:
            if not src._bound(stmt) and not any(i in v for v in src.updates.values()):
                raise ValueError(f"{module}: the statement at line {stmt.lineno} binds no "
                                 f"name; the edition of {a.name} cannot tell whether it "
                                 f"needs it")
            continue
        if isinstance(stmt, ast.FunctionDef) and stmt.name in pins:
            out.append("\n\n" + _pin(stmt, pins.pop(stmt.name), f"{module}.{stmt.name}"))
            continue
        sep = "\n\n" if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) else ""
        out.append(sep + src.segment(i))
    if pins:
        raise ValueError(f"pins of {a.name}: expected functions the edition holds, "
                         f"received {sorted(f'{module}.{p}' for p in pins)}")
    kept = shaker.names[module]
    # (a module of the edition stays importable with 'from package import it';
    # the others are named, or 'from package import it' hides the message)
    withheld = {n for n in src.binds if n not in kept and not n.startswith("__")
                and f"{module}.{n}" not in modules}
    if src.is_package:
        withheld |= {n for n in _submodules(module) if f"{module}.{n}" not in modules}
    if withheld:
        out.append(_withheld_hook(withheld, a.name))
    return "".join(out)


def _stubs(names, a):
    text = ("\n\n# The self-checks run at home; when the notebook is graded the grader\n"
            "# runs each test cell itself and calls the functions through _harness.\n"
            f"_GRADED_NOTE = ({a.name!r} + ': the self-checks run at home; while the '\n"
            "                'notebook is graded the grader runs this test itself.')\n")
    for name in names:
        if name == "prepare":
            text += ("\n\ndef prepare(*args, **kwargs):\n"
                     "    \"\"\"Nothing to prepare in a graded kernel.\"\"\"\n")
        else:
            text += (f"\n\ndef {name}(*args, **kwargs):\n"
                     f"    \"\"\"The self-check of {name} (runs at home).\"\"\"\n"
                     f"    print({name!r} + ' (' + _GRADED_NOTE + ')')\n")
    return text


def _init_text(shaker, modules):
    """The edition's lstmlib/__init__.py: the import hook, then the
    package-level names handed out."""
    a = shaker.a
    body = _shaken_text(shaker, PACKAGE, modules, docstring=False)
    return (
        _header(PACKAGE, a)
        + f'"""lstmlib as a graded notebook of {a.name} sees it: only what the\n'
        "notebook hands out. Any other module of lstmlib, and torch, cannot be\n"
        'imported here (at home the whole package is available)."""\n'
        "import sys as _sys\n\n"
        f"_ASSIGNMENT = {a.name!r}\n"
        f"_MODULES = frozenset({sorted(modules)!r})\n"
        f"_REFUSED = {NEVER_IMPORTED!r}\n"
        f"_NOT_HANDED_OUT = {_NOT_HANDED_OUT!r}\n"
        f"_NOT_AVAILABLE = {_NOT_AVAILABLE!r}\n\n\n"
        "class _NotHandedOut:\n"
        "    \"\"\"Refuses, with a message, the modules this edition does not hold.\"\"\"\n\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        top = name.partition('.')[0]\n"
        "        if (top == 'lstmlib' and name not in _MODULES) or top in _REFUSED:\n"
        "            template = _NOT_AVAILABLE if top in _REFUSED else _NOT_HANDED_OUT\n"
        "            raise ModuleNotFoundError(\n"
        "                template.format(name=name, assignment=_ASSIGNMENT),\n"
        "                name=name)\n"
        "        return None\n\n\n"
        "if not any(type(f).__name__ == '_NotHandedOut' for f in _sys.meta_path):\n"
        "    _sys.meta_path.insert(0, _NotHandedOut())\n"
        + body)


_SELFCHECK_INIT = '''"""The kernel's side of grading, as a graded kernel holds it.

``_harness``: what the kernel runs when the grader asks it to call a
function; ``_codec``: the plain-data format of the answers; ``checks``: the
self-check functions, which run at home (while a notebook is graded the
grader runs its test cells itself).
"""
'''


_MEMO = {}      # (assignment, its manifest entry, the sources' stat) -> files


def _sources_stat():
    return tuple((str(p), st.st_mtime_ns, st.st_size) for p in sorted(PACKAGE_DIR.rglob("*.py"))
                 for st in [p.stat()])


def edition_files(assignment: str) -> dict:
    """{relative path: text} of the edition of ``assignment`` (remembered
    while neither lstmlib's sources nor the manifest entry change)."""
    a = assignments.find(assignment)
    key = (assignment, repr(a), _sources_stat())
    if key not in _MEMO:
        for stale in [k for k in _MEMO if k[0] == assignment]:
            del _MEMO[stale]
        _MEMO[key] = _edition_files(a)
    return dict(_MEMO[key])


def _edition_files(a) -> dict:
    for key in a.pins:
        if key.rpartition(".")[0] not in a.hands_out or \
                key.rpartition(".")[2] not in a.hands_out[key.rpartition(".")[0]]:
            raise ValueError(f"pins of {a.name}: expected functions it hands out, "
                             f"received {key!r}")
    shaker = _Shaker(a)
    shaker.source(PACKAGE)
    _check_pinned_calls(shaker)
    modules = set(shaker.sources) | {PACKAGE, "lstmlib.selfcheck", "lstmlib.selfcheck._harness",
                                     "lstmlib.selfcheck._codec", "lstmlib.selfcheck.checks"}
    modules |= {".".join(m.split(".")[:k]) for m in modules for k in range(1, m.count(".") + 1)}
    files = {}
    for module in sorted(shaker.sources):
        if module == PACKAGE:
            continue
        src = shaker.sources[module]
        rel = Path(*module.split("."))
        rel = rel / "__init__.py" if src.is_package else rel.with_suffix(".py")
        files[rel.as_posix()] = _shaken_text(shaker, module, modules)
    files["lstmlib/__init__.py"] = _init_text(shaker, modules)
    files["lstmlib/selfcheck/__init__.py"] = _SELFCHECK_INIT
    for name in PROTOCOL:
        files[f"lstmlib/selfcheck/{name}"] = (PACKAGE_DIR / "selfcheck" / name).read_text(
            encoding="utf-8")
    files["lstmlib/selfcheck/checks.py"] = (
        _header("lstmlib.selfcheck.checks", a)
        + '"""The self-checks of the notebook: they run at home, not in a graded\n'
        'kernel (the grader replaces the self-check cells when it grades)."""\n'
        + _stubs(("prepare",) + _checks_parts(a), a))
    for rel, text in files.items():
        compile(text, rel, "exec")                  # a shaking bug fails here, loudly
    return dict(sorted(files.items()))


def packages(assignment: str) -> tuple:
    """The distributions a graded kernel of ``assignment`` needs besides
    ipykernel (numpy always)."""
    a = assignments.find(assignment)
    extra = tuple(p for p in a.packages if p != "numpy")
    for p in extra:
        if _under(p, NEVER_IMPORTED):
            raise ValueError(f"packages of {a.name}: expected no torch, received {p!r}")
    return ("numpy",) + extra


def digest(files: dict) -> str:
    h = hashlib.sha256()
    for rel, text in sorted(files.items()):
        h.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def build(assignment: str, dest: Path) -> Path:
    """Write the edition of ``assignment`` into the folder ``dest`` (created
    if missing) and return ``dest``: put it first on the kernel's path.

    ``dest`` must be empty or hold an edition written here before (replaced,
    or kept as it is when its files are the same); anything else in it is
    refused rather than overwritten.
    """
    files = edition_files(assignment)
    stamp = {"assignment": assignment, "sha256": digest(files),
             "packages": list(packages(assignment))}
    dest = Path(dest)
    marker = dest / MARKER
    staging = dest / f".{PACKAGE}.partial"
    if dest.exists():
        if not dest.is_dir():
            raise ValueError(f"dest: expected a folder, received the file {dest}")
        entries = {p.name for p in dest.iterdir()} - {staging.name}
        if entries and not (MARKER in entries and entries <= {MARKER, PACKAGE}):
            raise ValueError(f"dest: expected an empty folder or an edition of lstmlib, "
                             f"received {dest} holding {sorted(entries)[:5]}")
        if entries:
            try:
                old = json.loads(marker.read_text())
            except ValueError:
                old = None
            if old == stamp and _holds(dest, files):
                return dest                                 # the same edition
            shutil.rmtree(dest / PACKAGE, ignore_errors=True)
            marker.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    for rel, text in files.items():
        path = staging / Path(rel).relative_to(PACKAGE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    staging.rename(dest / PACKAGE)
    marker.write_text(json.dumps(stamp, indent=1) + "\n")
    return dest


def _holds(dest, files):
    """Whether ``dest`` holds exactly the sources ``files`` (Python's
    caches aside)."""
    found = {p.relative_to(dest).as_posix() for p in (dest / PACKAGE).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    if found != set(files):
        return False
    return all((dest / rel).read_text(encoding="utf-8") == text for rel, text in files.items())
