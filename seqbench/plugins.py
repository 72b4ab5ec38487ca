"""Plugin loading (pluggy) and the typed registries of methods, metrics, datasets and backends.

Follows pytest: built-in plugin modules registered by name, third-party ones from the
``seqbench`` entry-point group unless ``SEQBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set, ``-p MODULE``
to add one and ``-p no:NAME`` to block one. Unlike pluggy's own entry-point loader, a second
plugin registering an already-used name is a loud error naming both origins, and a plugin that
fails to import is a warning naming its distribution while everything else keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from .errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "seqbench"
DISABLE_AUTOLOAD_ENV = "SEQBENCH_DISABLE_PLUGIN_AUTOLOAD"

#: Packages whose public submodules are built-in plugins, each registered under its short name.
BUILTIN_PACKAGES: tuple[str, ...] = ("seqbench.datasets", "seqbench.methods", "seqbench.metrics", "seqbench.backends")
#: Further built-in plugin modules (framework services implemented on the run-event hooks).
BUILTIN_MODULES: tuple[str, ...] = ("seqbench.tracking.mlflow_plugin", "seqbench.visuals_plugin")


def builtin_plugin_modules() -> list[str]:
    """Every built-in plugin module: one module per method, metric and dataset, plus services.

    Discovered from the package folders, so adding ``methods/foo.py`` is all it takes to add a
    built-in method. Modules whose name starts with ``_`` are helpers, not plugins.
    """
    import pkgutil

    names = []
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        names += [f"{package_name}.{info.name}" for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
                  if not info.name.startswith("_")]
    return names + list(BUILTIN_MODULES)

T = TypeVar("T")


class PluginWarning(UserWarning):
    pass


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    origin: str  # "builtin seqbench.methods.dbse" or "distribution foo 1.0 (module foo.plugin)"

    @property
    def distribution(self) -> str:
        """``NAME VERSION`` of the distribution that provides the plugin (``-p MODULE`` for a loose module)."""
        if self.origin.startswith("builtin"):
            from . import __version__

            return f"seqbench {__version__}"
        if self.origin.startswith("distribution "):
            return self.origin[len("distribution "):].split(" (", 1)[0]
        return self.origin


#: Modules of the framework's own base classes: their code is versioned by seqbench itself, so an
#: edit there does not invalidate every plugin's cached models and cells.
FRAMEWORK_MODULES = frozenset({"seqbench.method", "seqbench.metric", "seqbench.data", "seqbench.backends",
                               "seqbench.backend", "abc",
                               "builtins", "typing"})


def code_digest(cls: type) -> str:
    """SHA-256 (16 hex) of the source files defining ``cls`` and its plugin base classes.

    Part of every cache key beside the plugin's ``version``: editing a plugin's code (a formula, a
    layer) never returns a stale cached model or cell, even when its author forgot to bump
    ``version``. The framework's own base classes and torch are left out.
    """
    import hashlib
    import inspect

    digest = hashlib.sha256()
    files: list[str] = []
    for klass in cls.__mro__:
        module = klass.__module__ or ""
        if module in FRAMEWORK_MODULES or module.split(".")[0] in ("torch", "builtins"):
            continue
        try:
            path = inspect.getsourcefile(klass)
        except TypeError:  # built-in or dynamically created class
            continue
        if path and path not in files:
            files.append(path)
    for path in files:
        try:
            with open(path, "rb") as fh:
                digest.update(code_without_docs(fh.read()))
        except OSError:
            digest.update(path.encode())
    return digest.hexdigest()[:16]


def code_without_docs(source: bytes) -> bytes:
    """The code of a Python source file without its docstrings, comments and layout (an AST dump).

    What the cache keys hash: an edited formula or layer changes them, a corrected docstring or a
    reformatted line does not (a model that took half an hour to train is not thrown away for a
    sentence). Source that does not parse is hashed as it is.
    """
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


@dataclass
class Registry(Generic[T]):
    """A name -> class mapping that fails loudly on clashes and suggests names on typos."""

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)
    #: Names registered by two plugins, with the clash message: only commands that need the name fail.
    clashes: dict[str, str] = field(default_factory=dict)

    def add(self, obj: T, origin: str) -> None:
        name = getattr(obj, "name", "")
        if not name:
            raise PluginError(f"{self.kind} class {obj!r} from {origin} has no `name` attribute; set name = '...'")
        if name in self.entries and self.entries[name].obj is not obj:
            self.clashes[name] = (f"two plugins register the {self.kind} {name!r}: {self.entries[name].origin} and "
                                  f"{origin}. Uninstall one, or block one with `-p no:PLUGIN`.")
            return
        self.entries[name] = Entry(name, obj, origin)

    def get(self, name: str) -> T:
        if name in self.clashes:
            raise PluginError(self.clashes[name])
        try:
            return self.entries[name].obj
        except KeyError:
            raise UnknownNameError(self.kind, name, self.entries) from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def origin(self, name: str) -> str:
        return self.entries[name].origin

    def distribution(self, name: str) -> str:
        return self.entries[name].distribution

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class Plugins:
    """The loaded plugin manager plus the registries filled from its registration hooks."""

    pm: pluggy.PluginManager
    methods: Registry
    metrics: Registry
    datasets: Registry
    backends: Registry
    origins: dict[str, str]
    failed: dict[str, str]

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def registry(self, kind: str) -> Registry:
        return {"method": self.methods, "metric": self.metrics, "dataset": self.datasets,
                "backend": self.backends}[kind]


def _plugin_name(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


def _import_plugin(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def load_plugins(extra: Iterable[str] = (), *, autoload: bool | None = None) -> Plugins:
    """Load built-in, entry-point and ``-p`` plugins, then fill the registries.

    ``extra`` holds ``-p`` values: ``MODULE`` adds a module, ``no:NAME`` blocks the plugin
    ``NAME`` (a built-in's short name, an entry-point name, or a module path).
    """
    extra = list(extra)
    blocked = {e[3:] for e in extra if e.startswith("no:")}
    added = [e for e in extra if not e.startswith("no:")]
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, str] = {}
    failed: dict[str, str] = {}

    def register(module: ModuleType, name: str, origin: str) -> None:
        if name in blocked or module.__name__ in blocked:
            return
        if pm.get_plugin(name) is not None or pm.is_registered(module):
            if pm.get_plugin(name) is module:
                return
            raise PluginError(f"two plugins use the name {name!r}: {origins.get(name, '?')} and {origin}. "
                              f"Uninstall one, or block one with `-p no:{name}`.")
        pm.register(module, name=name)
        origins[name] = origin

    candidates: set[str] = set()  # every name a `-p no:NAME` could mean, to flag one that means nothing
    for module_name in builtin_plugin_modules():
        name = _plugin_name(module_name)
        candidates |= {name, module_name}
        if name in blocked or module_name in blocked:
            continue
        register(_import_plugin(module_name), name, f"builtin {module_name}")

    if autoload:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            candidates |= {ep.name, ep.value.split(":")[0]}
            if ep.name in blocked:
                continue
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
            origin = f"distribution {dist} (entry point {ep.name} = {ep.value})"
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break seqbench
                failed[ep.name] = f"{origin}: {type(exc).__name__}: {exc}"
                warnings.warn(f"seqbench plugin {ep.name!r} from {dist} failed to load and is skipped: "
                              f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
                continue
            register(module, ep.name, origin)

    for module_name in added:
        try:
            module = _import_plugin(module_name)
        except Exception as exc:
            raise PluginError(f"-p {module_name}: cannot import plugin module ({type(exc).__name__}: {exc}). "
                              f"Check the module path and that its package is installed.") from None
        register(module, module_name, f"-p {module_name}")

    for name in sorted(blocked - candidates - set(added)):
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join('no:' + c for c in close)}?" if close else ""
        warnings.warn(f"-p no:{name}: no plugin is named {name!r}, so nothing was blocked.{hint} "
                      f"`seqbench list plugins` shows the names", PluginWarning, stacklevel=2)

    plugins = Plugins(pm, Registry("method"), Registry("metric"), Registry("dataset"), Registry("backend"),
                      origins, failed)
    hooks = (("seqbench_add_methods", plugins.methods), ("seqbench_add_metrics", plugins.metrics),
             ("seqbench_add_datasets", plugins.datasets), ("seqbench_add_backends", plugins.backends))
    for hook_name, registry in hooks:
        caller = getattr(pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            try:
                classes = impl.function() or []
            except Exception as exc:
                failed[impl.plugin_name] = f"{origins.get(impl.plugin_name, impl.plugin_name)}: {exc}"
                warnings.warn(f"seqbench plugin {impl.plugin_name!r} failed in {hook_name}: "
                              f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
                continue
            for cls in classes:
                registry.add(cls, origins.get(impl.plugin_name, impl.plugin_name))
    return plugins
