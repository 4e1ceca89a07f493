"""``TOOL_REGISTRY`` (extend) and ``Surgeon.get_subtools_impl`` (wrap): our tools and surgeon subtools, as lazy
proxies (see ``integration/tool_proxy.py`` for why they must be proxies)."""

from polygraphy_ext.integration import registry
from polygraphy_ext.integration.tool_proxy import PROXY_MARKER, available, make_proxy, entries_from_env


def apply(module):
    if module.__name__ == "polygraphy.tools.registry":
        extend_tool_registry(module)
    elif module.__name__ == "polygraphy.tools.surgeon.surgeon":
        extend_surgeon(module)


def extend_tool_registry(registry_module):
    """Append proxies for our top-level tools to ``TOOL_REGISTRY`` (idempotent)."""
    tool_registry = registry_module.TOOL_REGISTRY
    present = {getattr(tool, "name", None) for tool in tool_registry}
    for name, module, class_name in available(registry.TOOLS + entries_from_env("POLYGRAPHY_EXT_TEST_TOOLS")):
        if name not in present:
            tool_registry.append(make_proxy(name, module, class_name))


def extend_surgeon(surgeon_module):
    """Wrap ``Surgeon.get_subtools_impl`` so that it also returns our subtools (idempotent)."""
    surgeon_class = surgeon_module.Surgeon
    original = surgeon_class.get_subtools_impl
    if getattr(original, PROXY_MARKER, False):
        return

    def get_subtools_impl(self):
        title, subtools = original(self)
        present = {getattr(tool, "name", None) for tool in subtools}
        entries = available(registry.SURGEON_SUBTOOLS + entries_from_env("POLYGRAPHY_EXT_TEST_SURGEON_SUBTOOLS"))
        extra = [make_proxy(name, module, cls) for name, module, cls in entries if name not in present]
        return title, list(subtools) + extra

    setattr(get_subtools_impl, PROXY_MARKER, True)
    surgeon_class.get_subtools_impl = get_subtools_impl
