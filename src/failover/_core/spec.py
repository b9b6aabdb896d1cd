"""Platforms, operation types and the built-in table of well-known providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

IMAGE_GENERATION: Final = "image_generation"
IMAGE_EDITING: Final = "image_editing"
TEXT_GENERATION: Final = "text_generation"
VIDEO_GENERATION: Final = "video_generation"

#: The operation types failover knows out of the box. A manager may define others.
BUILTIN_OPERATION_TYPES: Final[tuple[str, ...]] = (
    IMAGE_GENERATION,
    IMAGE_EDITING,
    TEXT_GENERATION,
    VIDEO_GENERATION,
)


class _FromKnownTable(str):
    """The type of ``PlatformSpec.api_key_env``'s default: "not given, use the table".

    A ``str`` subclass so the field keeps its public type ``str | None``; ``__post_init__``
    replaces it before anyone can see it, so ``repr`` and equality only ever meet real values.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the well-known platform's variable>"


_KEY_FROM_TABLE: Final = _FromKnownTable()


#: The features of a spec that declares none (shared: an empty frozenset is 216 bytes).
NO_FEATURES: Final[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """One platform (provider + model) that can serve one or more operation types.

    ``api_key_env`` names the environment variable holding the key. Left out, it comes from
    the table of well-known platforms (``OPENAI_API_KEY`` for ``"openai"``), as in the
    ``(name, model)`` form; ``None`` says the platform needs no key. The key's *value* is
    never stored here, so ``repr`` is safe.

    Capabilities (left out of ``repr``, which stays as it was): ``context_window``, the most
    tokens a request may hold (``None``: not declared), and ``features``, free-form names
    such as ``"mask"``, ``"vision"``, ``"json"``. A call that requires some
    (``failover_context={"require": ...}``) skips the platforms that do not declare them.
    """

    name: str
    model: str
    operation_types: frozenset[str] = field(default_factory=frozenset)
    priority: int = 0
    estimated_cost: float = 0.0
    estimated_time: float = 0.0
    api_key_env: str | None = _KEY_FROM_TABLE
    context_window: int | None = field(default=None, repr=False)
    features: frozenset[str] = field(default=NO_FEATURES, repr=False)

    def __post_init__(self) -> None:
        # Imported here to keep this module free of cycles: _errors imports nothing of ours.
        from failover._core import validate
        from failover._core.errors import ConfigError

        if self.api_key_env is _KEY_FROM_TABLE:
            known = KNOWN_PLATFORMS.get(self.name) if isinstance(self.name, str) else None
            object.__setattr__(self, "api_key_env", known.api_key_env if known else None)

        validate.identifier("name", self.name, label="PlatformSpec.name")
        validate.name("model", self.model, label=f"PlatformSpec.model for {self.name!r}")
        operation_types: object = self.operation_types
        if not isinstance(operation_types, frozenset) or not all(
            isinstance(item, str) and item for item in operation_types
        ):
            names = validate.strings(
                "operation_types",
                operation_types,
                of="operation names",
                label=f"PlatformSpec.operation_types for {self.name!r}",
            )
            object.__setattr__(self, "operation_types", frozenset(names))
        for attr in ("estimated_cost", "estimated_time"):
            label = f"PlatformSpec.{attr} for {self.name!r}"
            # inf is allowed: an estimate of "never worth it" sorts last under cost order.
            value = validate.number(
                attr, getattr(self, attr), at_least=0, allow_inf=True, label=label
            )
            object.__setattr__(self, attr, value)
        validate.integer(
            "priority",
            self.priority,
            kind="an int",
            label=f"PlatformSpec.priority for {self.name!r}",
        )
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not self.api_key_env
        ):
            raise ConfigError(
                f"PlatformSpec.api_key_env for {self.name!r} must be a variable name or None, "
                f"got {validate.shown(self.api_key_env)}",
                key="api_key_env",
            )
        if self.context_window is not None:
            validate.integer(
                "context_window",
                self.context_window,
                at_least=1,
                label=f"PlatformSpec.context_window for {self.name!r}",
            )
        features: object = self.features
        if not features and features is not NO_FEATURES and isinstance(features, frozenset):
            # One empty set shared by every spec: an empty frozenset is 216 bytes, per spec.
            object.__setattr__(self, "features", NO_FEATURES)
        elif not isinstance(features, frozenset) or not all(
            isinstance(item, str) and item for item in features
        ):
            names = validate.strings(
                "features",
                features,
                of="feature names",
                label=f"PlatformSpec.features for {self.name!r}",
            )
            object.__setattr__(self, "features", frozenset(names))


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a call needs of a platform: at least ``context_window`` tokens (``None``: any),
    more than ``larger_than`` tokens (set after a ``context_window`` failure), and every one
    of ``features``."""

    context_window: int | None = None
    features: frozenset[str] = frozenset()
    larger_than: int | None = None

    def unmet(self, spec: PlatformSpec) -> bool:
        """Whether ``spec`` cannot serve it. A platform that declares no window is not
        skipped for one (it may well serve it); a feature must be declared."""
        if self.features and not self.features <= spec.features:
            return True
        window = spec.context_window
        if window is None:
            return False
        if self.context_window is not None and window < self.context_window:
            return True
        return self.larger_than is not None and window <= self.larger_than

    def beyond(self, window: int) -> Requirement:
        """This requirement, now also more than ``window`` tokens."""
        floor = window if self.larger_than is None else max(window, self.larger_than)
        return Requirement(self.context_window, self.features, floor)


def requirement(value: object) -> Requirement:
    """A call's ``require`` as a :class:`Requirement`: a ``Requirement``, a mapping with
    ``context_window`` and/or ``features``, or an iterable of feature names."""
    from failover._core import validate
    from failover._core.errors import ConfigError

    if isinstance(value, Requirement):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - {"context_window", "features"})
        if unknown:
            raise ConfigError(
                f"require: unknown key {unknown[0]!r}; allowed: context_window, features",
                key="require",
            )
        window = value.get("context_window")
        if window is not None:
            validate.integer("context_window", window, at_least=1, label="require.context_window")
        features = value.get("features", ())
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        window, features = None, value
    else:
        raise ConfigError(
            "require must be a mapping (context_window, features) or a list of feature "
            f"names, got {validate.shown(value)}",
            key="require",
        )
    names = validate.strings("features", features, of="feature names", label="require.features")
    return Requirement(window, frozenset(names))


@dataclass(frozen=True, slots=True)
class KnownPlatform:
    """Defaults for a well-known platform name: its key variable and rough cost/time."""

    api_key_env: str | None
    estimated_cost: float
    estimated_time: float


#: Well-known platform names, the variable their key usually lives in, and rough
#: per-request cost (USD) and time (seconds) used for cost ordering and the health table.
KNOWN_PLATFORMS: Final[dict[str, KnownPlatform]] = {
    "pollinations": KnownPlatform(None, 0.0, 8.0),
    # Keyless, as the original table has it; failover.http sends HF_TOKEN when it is set.
    "huggingface": KnownPlatform(None, 0.0, 15.0),
    "fal": KnownPlatform("FAL_KEY", 0.025, 6.0),
    "flux_pro": KnownPlatform("BFL_API_KEY", 0.003, 4.0),
    "stability": KnownPlatform("STABILITY_API_KEY", 0.04, 10.0),
    "replicate": KnownPlatform("REPLICATE_API_TOKEN", 0.03, 12.0),
    "groq": KnownPlatform("GROQ_API_KEY", 0.0002, 0.8),
    "xai": KnownPlatform("XAI_API_KEY", 0.002, 2.0),
    "google": KnownPlatform("GOOGLE_API_KEY", 0.0001, 1.5),
    "together": KnownPlatform("TOGETHER_API_KEY", 0.0002, 1.5),
    "openai": KnownPlatform("OPENAI_API_KEY", 0.0006, 2.0),
    "anthropic": KnownPlatform("ANTHROPIC_API_KEY", 0.0008, 2.5),
}

#: The table teams use today, with real text-to-video models on Replicate and FAL.
DEFAULT_PRIORITIES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    IMAGE_GENERATION: (
        ("pollinations", "free"),
        ("huggingface", "free"),
        ("fal", "fal-3d"),
        ("flux_pro", "flux-schnell"),
        ("stability", "sd-3.5-large"),
        ("replicate", "flux"),
    ),
    IMAGE_EDITING: (
        ("stability", "sd-3.5-large"),
        ("replicate", "flux"),
        ("fal", "fal-3d"),
    ),
    TEXT_GENERATION: (
        ("groq", "llama-3.3-70b-versatile"),
        ("xai", "grok-beta"),
        ("google", "gemini-2.5-flash-lite"),
        ("together", "llama-3.2-3b-instruct-turbo"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-3-haiku-20240307"),
    ),
    VIDEO_GENERATION: (
        ("replicate", "minimax/video-01"),
        ("fal", "fal-ai/kling-video/v1.6/standard/text-to-video"),
    ),
}


#: Capabilities of the built-in table's models: (platform, model) -> (context window in
#: tokens, features). From the providers' model pages; a platform listed elsewhere declares
#: its own.
KNOWN_CAPABILITIES: Final[dict[tuple[str, str], tuple[int | None, frozenset[str]]]] = {
    ("groq", "llama-3.3-70b-versatile"): (131_072, frozenset({"json", "tools"})),
    ("xai", "grok-beta"): (131_072, frozenset({"json", "tools"})),
    ("google", "gemini-2.5-flash-lite"): (1_048_576, frozenset({"json", "tools", "vision"})),
    ("together", "llama-3.2-3b-instruct-turbo"): (131_072, frozenset({"json"})),
    ("openai", "gpt-4o-mini"): (128_000, frozenset({"json", "tools", "vision"})),
    ("anthropic", "claude-3-haiku-20240307"): (200_000, frozenset({"tools", "vision"})),
    ("stability", "sd-3.5-large"): (None, frozenset({"mask", "negative_prompt"})),
    ("replicate", "flux"): (None, frozenset({"mask"})),
    ("fal", "fal-3d"): (None, frozenset({"mask"})),
}


def known_capabilities(name: str, model: str) -> tuple[int | None, frozenset[str]]:
    """The built-in table's context window and features for ``name``/``model`` (none: none)."""
    return KNOWN_CAPABILITIES.get((name, model), (None, frozenset()))


def known_platform(name: str) -> KnownPlatform | None:
    """The built-in defaults for ``name``, or ``None`` for a platform failover does not know."""
    return KNOWN_PLATFORMS.get(name)


def check_operation_name(name: object, *, where: str) -> str:
    """Return ``name`` if it is a valid operation type name, else raise ``ConfigError``."""
    from failover._core import validate

    key = name if isinstance(name, str) else validate.shown(name)
    return validate.identifier(
        "operation type",
        name,
        label=f"{where}: operation type",
        hint=" such as 'image_editing'",
        key=key,
    )
