"""Plugin loading through real entry-point metadata, -p / no:, autoload switch, clashes, failures."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from seqbench.errors import PluginError, UnknownNameError
from seqbench.plugins import DISABLE_AUTOLOAD_ENV, PluginWarning, load_plugins


def test_third_party_entry_point_registers_everything(toy_plugin):
    plugins = load_plugins()
    assert "toyae" in plugins.methods.names()
    assert "toy-mean" in plugins.metrics.names()
    assert "toy-bars" in plugins.datasets.names()
    origin = plugins.methods.origin("toyae")
    assert "seqbench_toy 0.1" in origin and "entry point toy" in origin


def test_autoload_can_be_disabled_and_p_adds_module(toy_plugin, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert "toyae" not in load_plugins().methods
    assert "toyae" in load_plugins(["seqbench_toy"]).methods


def test_block_plugin_by_name(toy_plugin):
    assert "toyae" not in load_plugins(["no:toy"]).methods


def test_duplicate_name_fails_naming_both_origins(toy_plugin, make_distribution):
    """A clash fails only what needs the clashing name; everything else, and `list`, keeps working."""
    source = (toy_plugin / "seqbench_toy" / "__init__.py").read_text()
    make_distribution(toy_plugin, "seqbench_toy_clone", "seqbench_toy_clone", source, entry_name="toyclone")
    plugins = load_plugins()
    with pytest.raises(PluginError) as err:
        plugins.methods.get("toyae")
    message = str(err.value)
    assert "seqbench_toy 0.1" in message and "seqbench_toy_clone 0.1" in message and "no:" in message
    assert plugins.methods.get("dbse").name == "dbse"
    listing = subprocess.run([sys.executable, "-m", "seqbench", "list", "methods"], capture_output=True, text=True)
    assert listing.returncode == 0 and re.search(r"toyae\s+CLASH: two plugins register the method 'toyae'",
                                                 listing.stdout), listing.stdout
    run = subprocess.run([sys.executable, "-m", "seqbench", "run", "--methods", "toyae", "--dry-run", "-p",
                          "no:mlflow_plugin"], capture_output=True, text=True)
    assert run.returncode == 2 and "two plugins register the method 'toyae'" in run.stderr
    blocked = subprocess.run([sys.executable, "-m", "seqbench", "run", "--methods", "toyae", "--metrics", "toy-mean",
                              "--dataset", "toy-bars", "--dry-run", "-p", "no:mlflow_plugin", "-p", "no:toyclone"],
                             capture_output=True, text=True)
    assert blocked.returncode == 0, blocked.stderr


def test_broken_plugin_is_a_warning_and_the_rest_works(toy_plugin, make_distribution):
    make_distribution(toy_plugin, "seqbench_broken", "seqbench_broken", "import does_not_exist_anywhere\n",
                       entry_name="broken")
    with pytest.warns(PluginWarning, match="broken.*seqbench_broken 0.1.*does_not_exist_anywhere"):
        plugins = load_plugins()
    assert "toyae" in plugins.methods
    assert "broken" in plugins.failed


def test_unknown_name_suggests():
    plugins = load_plugins()
    with pytest.raises(UnknownNameError) as err:
        plugins.methods.get("dbsee")
    assert "Did you mean 'dbse'" in str(err.value) and "seqbench list methods" in str(err.value)


def test_p_with_bad_module_is_actionable():
    with pytest.raises(PluginError, match="cannot import plugin module"):
        load_plugins(["no_such_module_xyz"])


def test_cli_lists_third_party_method(toy_plugin):
    out = subprocess.run([sys.executable, "-m", "seqbench", "list", "methods"], capture_output=True, text=True,
                         check=True)
    assert "toyae" in out.stdout and "seqbench_toy" in out.stdout


def test_cache_keys_hash_code_not_docstrings_or_comments():
    """An edited formula changes the source digest; a corrected docstring or comment does not."""
    from seqbench.plugins import code_without_docs

    base = b'"""Module doc."""\nclass M:\n    """Old doc."""\n    def f(self):\n        return 2 * x  # comment\n'
    redocumented = b'"""New doc."""\nclass M:\n    """Rewritten."""\n\n    def f(self):\n        # why\n        return 2 * x\n'
    edited = base.replace(b"2 * x", b"2000 * x")
    assert code_without_docs(base) == code_without_docs(redocumented)
    assert code_without_docs(base) != code_without_docs(edited)
    assert code_without_docs(b"def broken(:\n") == b"def broken(:\n"
