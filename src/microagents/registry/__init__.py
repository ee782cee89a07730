"""The agent registry: agents and workflows resolved by name and version range from ordered
sources (folders, git repositories, installed packages), pinned by a lock file.

Imports: `graph`, `spec` and below."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._git_source import GitSource as GitSource
    from ._package_source import PackageSource as PackageSource
    from ._registry import (
        AgentRegistry as AgentRegistry,
    )
    from ._registry import (
        AgentSource as AgentSource,
    )
    from ._registry import (
        FolderSource as FolderSource,
    )

_EXPORTS = {
    # the registry and its sources
    "AgentRegistry": "._registry",
    "AgentSource": "._registry",
    "FolderSource": "._registry",
    "GitSource": "._git_source",
    "PackageSource": "._package_source",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
