"""Registry and plugin loading: collisions, did-you-mean, broken plugins, allow/deny, strict configs."""

from __future__ import annotations

import types

import pytest

from ddbench import hookimpl
from ddbench.config import ComponentConfig
from ddbench.errors import ConfigError, PluginError, RegistryCollisionError, UnknownNameError
from ddbench.methods.base import Method
from ddbench.plugins import load_registries
from ddbench.registry import Registry


class _Cfg(ComponentConfig):
    lr: float = 0.1


class FakeMethod(Method):
    """A fake method for registry tests."""

    name = "fake"
    Config = _Cfg


def plugin(**hooks) -> types.SimpleNamespace:
    """An in-process plugin object whose attributes are hook implementations."""
    return types.SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()})


def test_builtins_are_registered_through_the_hooks():
    reg = load_registries(entry_points=False)
    assert {"random", "herding", "kcenter", "whole"} <= set(reg.method.names())
    assert {"pointnet", "pointnet_in"} <= set(reg.backbone.names())
    assert {"shapes", "modelnet10", "modelnet40"} <= set(reg.dataset.names())
    assert {"sadm", "dd3d"} <= set(reg.protocol.names())
    assert "inprocess" in reg.executor
    builtin = {p.name for p in reg.plugins if p.builtin}
    assert reg.method.get("random").source in builtin


def test_collision_is_an_error():
    registry = Registry("method")
    registry.add(FakeMethod, source="a")
    with pytest.raises(RegistryCollisionError, match="collides with the one registered by plugin 'a'"):
        registry.add(FakeMethod, source="b")


def test_unknown_name_suggests_close_match():
    reg = load_registries(entry_points=False)
    with pytest.raises(UnknownNameError) as info:
        reg.method.get("herdng")
    assert "did you mean 'herding'" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_name_without_close_match_lists_known():
    reg = load_registries(entry_points=False)
    with pytest.raises(UnknownNameError, match=r"unknown backbone 'zzz'\. Known backbones: .*pointnet"):
        reg.backbone.get("zzz")


def test_third_party_plugin_registers_method():
    good = plugin(register_methods=lambda register: register(FakeMethod))
    reg = load_registries(extra_plugins=[("good", good)], entry_points=False)
    info = reg.method.get("fake")
    assert info.source == "good"
    assert info.default_config() == {"lr": 0.1}
    assert next(p for p in reg.plugins if p.name == "good").components == [("method", "fake")]


def test_plugin_that_fails_to_import_is_reported_not_fatal(monkeypatch):
    class BrokenEntryPoint:
        name, value, dist = "broken_import", "broken_import:plugin", None

        @staticmethod
        def load():
            raise ImportError("no module named 'missing_dependency'")

    monkeypatch.setattr("ddbench.plugins.installed_entry_points", lambda: [BrokenEntryPoint])
    reg = load_registries()
    info = next(p for p in reg.plugins if p.name == "broken_import")
    assert info.status == "broken"
    assert "missing_dependency" in info.error
    assert "random" in reg.method  # ddbench still works


def test_misspelt_hook_is_caught_by_check_pending():
    typo = plugin(register_method=lambda register: register(FakeMethod))  # singular: not a ddbench hook
    reg = load_registries(extra_plugins=[("typo", typo)], entry_points=False)
    info = next(p for p in reg.plugins if p.name == "typo")
    assert info.status == "broken"
    assert "register_method" in info.error and "register_methods" in info.error
    assert "fake" not in reg.method


def test_hook_that_raises_is_broken_and_its_components_dropped():
    class Other(FakeMethod):
        name = "other"

    def register_methods(register):
        register(Other)
        raise RuntimeError("half-way failure")

    bad = plugin(register_methods=register_methods)
    reg = load_registries(extra_plugins=[("bad", bad)], entry_points=False)
    info = next(p for p in reg.plugins if p.name == "bad")
    assert info.status == "broken" and "half-way failure" in info.error
    assert "other" not in reg.method


def test_plugin_colliding_with_builtin_is_broken_builtin_kept():
    class Impostor(FakeMethod):
        name = "random"

    imp = plugin(register_methods=lambda register: register(Impostor))
    reg = load_registries(extra_plugins=[("impostor", imp)], entry_points=False)
    assert reg.method.get("random").cls is not Impostor
    info = next(p for p in reg.plugins if p.name == "impostor")
    assert info.status == "broken" and "collides" in info.error


def test_component_without_strict_config_is_rejected():
    class Loose(ComponentConfig):
        model_config = {"extra": "allow"}

    class LooseMethod(FakeMethod):
        name = "loose"
        Config = Loose

    p = plugin(register_methods=lambda register: register(LooseMethod))
    reg = load_registries(extra_plugins=[("loose", p)], entry_points=False)
    assert "extra='forbid'" in next(x for x in reg.plugins if x.name == "loose").error


def test_allow_and_deny_environment_variables(monkeypatch):
    good = plugin(register_methods=lambda register: register(FakeMethod))
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "good")
    reg = load_registries(extra_plugins=[("good", good)], entry_points=False)
    assert "fake" not in reg.method
    assert next(p for p in reg.plugins if p.name == "good").status == "disabled"

    monkeypatch.delenv("DDBENCH_DISABLE_PLUGINS")
    monkeypatch.setenv("DDBENCH_PLUGINS", "")  # allow-list that admits no third-party plugin
    reg = load_registries(extra_plugins=[("good", good)], entry_points=False)
    assert "fake" not in reg.method and "random" in reg.method

    monkeypatch.setenv("DDBENCH_PLUGINS", "good")
    reg = load_registries(extra_plugins=[("good", good)], entry_points=False)
    assert "fake" in reg.method


def test_config_forbids_unknown_keys_with_one_line_error():
    with pytest.raises(ConfigError) as info:
        FakeMethod.make_config({"lrr": 1})
    msg = str(info.value)
    assert "lrr: not a known option" in msg and "options: lr" in msg and "\n" not in msg


def test_config_validates_types():
    with pytest.raises(ConfigError, match="lr"):
        FakeMethod.make_config({"lr": "fast"})


def test_component_without_name_is_a_plugin_error():
    class Nameless(Method):
        Config = _Cfg

    with pytest.raises(PluginError, match="name"):
        Registry("method").add(Nameless)
