"""Build an MI-MoE model from a plain dict or YAML: backbone and gate registries, defaults.

A config is a dict (or a YAML file, or the name of a bundled config in
``mimoe_core/configs/``) whose keys override :data:`DEFAULT_CONFIG`; nested dicts merge key by
key. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mimoe_core.atom_attributes import NUM_ATOM_ATTRIBUTES
from mimoe_core.constants import DEFAULT_CUTOFFS, GATES, VARIANTS
from mimoe_core.models._common import Expert
from mimoe_core.models.gate import Gate, MLPGate, RandomGate, SizeGate, TransformerGate
from mimoe_core.models.learnable_cutoffs import LearnableCutoffs, check_learnable_cutoffs
from mimoe_core.models.mimoe import (
    ROUTED_VARIANTS,
    MIMoE,
    check_learnable_target,
    check_trunk_target,
)

#: Backbone name (``constants.BACKBONES``, in that order) -> "module:class", imported on first
#: use (DimeNet++ pulls in sympy).
EXPERTS: dict[str, str] = {
    "schnet": "mimoe_core.models.schnet:SchNetExpert",
    "painn": "mimoe_core.models.painn:PaiNNExpert",
    "visnet": "mimoe_core.models.visnet:ViSNetExpert",
    "dimenet++": "mimoe_core.models.dimenet:DimeNetPPExpert",
    "et": "mimoe_core.models.et:EquivariantTransformerExpert",
}

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

#: Every key a config may set, with its default.
DEFAULT_CONFIG: dict[str, Any] = {
    "backbone": "schnet",
    "variant": "sparse",
    "cutoffs": list(DEFAULT_CUTOFFS),
    "top_k": 2,
    "temperature": 1.0,
    "balance_weight": 0.1,
    "out_channels": 1,
    # A mean-variance head (Gaussian NLL): the model predicts its own uncertainty.
    "variance_head": False,
    # Experts also embed chemical atom attributes (mimoe_core.atom_attributes); the data
    # must then be featurized with atom_attributes=True.
    "atom_attributes": False,
    # Learnable expert cutoffs (mimoe_core.models.learnable_cutoffs): "cutoffs" is where
    # they start; they stay ordered inside (lower, upper) Å, the experts' bases span
    # [0, upper], and each expert's edges fade out over the last `ramp` Å before its cutoff.
    "learnable_cutoffs": {"enabled": False, "lower": 1.0, "upper": 6.0, "ramp": 0.5},
    # A shared trunk (memory-lean experts): the atom embedding and the first `layers` of the
    # experts' num_layers blocks run once, on the graph at `cutoff` Å (null: the largest
    # cutoff, or the upper bound of learnable ones); each expert keeps the remaining blocks
    # at its own cutoff. hidden_channels: null (the experts' width, the only one it can
    # hand on).
    "shared_trunk": {"enabled": False, "layers": 1, "cutoff": None, "hidden_channels": None},
    # Keyword arguments of the backbone's expert class (its other settings keep defaults).
    "expert": {"hidden_channels": 128, "num_layers": 3},
    # name: mlp | transformer (or the ablations size | random); the other keys are that
    # gate's keyword arguments.
    "gate": {"name": "mlp", "noisy": False},
    # The filtration grid the gate reads; must match the featurization's grid.
    "radii": {"start": 1.0, "stop": 5.0, "step": 0.1},
    "num_descriptors": 5,
    # variant "one_expert": index into cutoffs of the single shallow expert.
    "one_expert": 2,
    # variant "plain": the plain backbone, full depth, at one cutoff (overrides "expert").
    "plain": {"cutoff": 5.0, "num_layers": 6},
}


def expert_class(name: str) -> type[Expert]:
    """The expert class registered as ``name`` (one of :data:`EXPERTS`)."""
    if name not in EXPERTS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(EXPERTS)}")
    module, attr = EXPERTS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def bundled_configs() -> list[str]:
    """Names of the YAML configs shipped in ``mimoe_core/configs`` (one per backbone)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A full, validated config: defaults overridden by ``source``.

    Args:
        source: ``None`` (defaults), a dict, a path to a YAML file, or the name of a
            bundled config (see :func:`bundled_configs`).

    Returns:
        A new dict with every key of :data:`DEFAULT_CONFIG`.

    Raises:
        ValueError: unknown keys or values, or a name that is neither a file nor bundled.

    Example:
        >>> load_config({"backbone": "painn", "top_k": 1})["expert"]
        {'hidden_channels': 128, 'num_layers': 3}
    """
    if source is None:
        user: Mapping[str, Any] = {}
    elif isinstance(source, Mapping):
        user = source
    else:
        path = Path(source)
        if not path.is_file():
            path = CONFIG_DIR / f"{source}.yaml"
        if not path.is_file():
            raise ValueError(
                f"config {str(source)!r} is neither a YAML file nor a bundled config "
                f"({', '.join(bundled_configs())})"
            )
        user = yaml.safe_load(path.read_text()) or {}
        if not isinstance(user, Mapping):
            raise ValueError(f"{path}: a config must be a mapping, got {type(user).__name__}")
    user = _renamed_keys(user)
    config = copy.deepcopy(DEFAULT_CONFIG)
    unknown = sorted(set(user) - set(config))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(config)}")
    for key, value in user.items():
        if isinstance(config[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"config[{key!r}] must be a mapping, got {value!r}")
            config[key].update(value)
        else:
            config[key] = copy.deepcopy(value)
    _validate(config)
    return config


def _renamed_keys(user: Mapping[str, Any]) -> dict[str, Any]:
    """Read configs written before the model variants were named (checkpoints included).

    They said ``routing: one | single`` and ``single: {...}``; today's names are
    ``variant: one_expert | plain`` and ``plain: {...}``.
    """
    user = dict(user)
    if "routing" in user and "variant" not in user:
        old = user.pop("routing")
        user["variant"] = _OLD_VARIANT_NAMES.get(old, old)
    if "single" in user and "plain" not in user:
        user["plain"] = user.pop("single")
    return user


_OLD_VARIANT_NAMES = {"one": "one_expert", "single": "plain"}


def _validate(config: dict[str, Any]) -> None:
    expert_class(config["backbone"])
    if config["variant"] not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {config['variant']!r}")
    if config["gate"].get("name") not in GATES:
        raise ValueError(f"gate name must be one of {GATES}, got {config['gate'].get('name')!r}")
    cutoffs = [float(c) for c in config["cutoffs"]]
    if not cutoffs or any(b <= a for a, b in zip(cutoffs, cutoffs[1:], strict=False)):
        raise ValueError(f"cutoffs must be non-empty and strictly increasing, got {cutoffs}")
    if config["variant"] == "one_expert" and not 0 <= int(config["one_expert"]) < len(cutoffs):
        raise ValueError(
            f"one_expert={config['one_expert']} is not an index into cutoffs {config['cutoffs']}"
        )
    config_radii(config)
    _validate_learnable_cutoffs(config, cutoffs)
    _validate_shared_trunk(config)


def _option_enabled(config: Mapping[str, Any], section: str) -> bool:
    """Whether an option section (``{enabled: ..., ...}``) is on, after checking its keys."""
    spec = config[section]
    unknown = sorted(set(spec) - set(DEFAULT_CONFIG[section]))
    if unknown:
        raise ValueError(
            f"unknown {section} key(s) {unknown}; valid keys: {sorted(DEFAULT_CONFIG[section])}"
        )
    if not isinstance(spec["enabled"], bool):
        raise ValueError(f"{section}.enabled must be true or false, got {spec['enabled']!r}")
    return spec["enabled"]


def _validate_learnable_cutoffs(config: Mapping[str, Any], cutoffs: list[float]) -> None:
    if not _option_enabled(config, "learnable_cutoffs"):
        return
    spec = config["learnable_cutoffs"]
    check_learnable_target(config["variant"], expert_class(config["backbone"]))
    try:
        bounds = [float(spec[k]) for k in ("lower", "upper", "ramp")]
    except (TypeError, ValueError):
        raise ValueError(
            f"learnable_cutoffs lower, upper and ramp must be numbers: {spec}"
        ) from None
    check_learnable_cutoffs(cutoffs, *bounds)


def _validate_shared_trunk(config: Mapping[str, Any]) -> None:
    if not _option_enabled(config, "shared_trunk"):
        return
    spec = config["shared_trunk"]
    check_trunk_target(config["variant"])
    depth = config["expert"].get("num_layers", 3)
    layers = spec["layers"]
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers < depth:
        raise ValueError(
            f"shared_trunk.layers must be a whole number in [1, {depth - 1}] (the experts "
            f"have num_layers={depth} and keep at least one block each), got {layers!r}"
        )
    if spec["cutoff"] is not None:
        radius = _search_radius(config)
        cutoff = spec["cutoff"]
        if (
            isinstance(cutoff, bool)
            or not isinstance(cutoff, int | float)
            or not (0 < cutoff <= radius)
        ):
            raise ValueError(
                f"shared_trunk.cutoff must be a number in (0, {radius}] Å (the neighbour "
                f"search radius), or null for {radius}; got {cutoff!r}"
            )
    width = config["expert"].get("hidden_channels", 128)
    if spec["hidden_channels"] is not None and spec["hidden_channels"] != width:
        raise ValueError(
            f"shared_trunk.hidden_channels={spec['hidden_channels']} does not match the "
            f"experts' hidden_channels={width}: the trunk hands its atom features to every "
            "expert, so the widths must be equal (leave it null to take the experts' width)"
        )


def _search_radius(config: Mapping[str, Any]) -> float:
    """Radius in Å of the one neighbour search of a routed mixture."""
    spec = config["learnable_cutoffs"]
    return float(spec["upper"]) if spec["enabled"] else float(config["cutoffs"][-1])


def config_radii(config: Mapping[str, Any]) -> np.ndarray:
    """The filtration grid [T] in Å described by ``config["radii"]`` (start, stop, step)."""
    spec = config["radii"]
    start, stop, step = float(spec["start"]), float(spec["stop"]), float(spec["step"])
    if not (step > 0 and stop >= start >= 0):
        raise ValueError(f"radii needs 0 <= start <= stop and step > 0, got {dict(spec)}")
    num = int(round((stop - start) / step)) + 1
    return np.round(np.linspace(start, stop, num), 10)


def _make_gate(config: Mapping[str, Any], num_experts: int) -> Gate:
    kwargs = {k: v for k, v in config["gate"].items() if k != "name"}
    radii = config_radii(config)
    common = {"num_descriptors": int(config["num_descriptors"]), "num_experts": num_experts}
    try:
        name = config["gate"]["name"]
        if name == "mlp":
            return MLPGate(num_radii=len(radii), **common, **kwargs)
        if name == "size":
            return SizeGate(**common, **kwargs)
        if name == "random":
            return RandomGate(**common, **kwargs)
        return TransformerGate(radii=radii.tolist(), **common, **kwargs)
    except TypeError as err:
        raise ValueError(f"bad gate settings {dict(config['gate'])}: {err}") from None


def _make_expert(
    cls: type[Expert], cutoff: float, kwargs: Mapping[str, Any], **role: Any
) -> Expert:
    try:
        return cls(cutoff=float(cutoff), **kwargs, **role)
    except TypeError as err:
        raise ValueError(f"bad settings for {cls.__name__} {dict(kwargs)}: {err}") from None


def create_model(config: str | Path | Mapping[str, Any] | None = None) -> MIMoE:
    """Build an :class:`MIMoE` from a config (see :func:`load_config`).

    The model keeps the resolved config as ``model.config`` (what a checkpoint stores).

    Example:
        >>> model = create_model({"expert": {"hidden_channels": 16, "num_layers": 1}})
        >>> model.variant, model.num_experts, model.top_k, model.cutoffs[-1]
        ('sparse', 5, 2, 4.0)
    """
    cfg = load_config(config)
    cls = expert_class(cfg["backbone"])
    variant = cfg["variant"]
    args = dict(cfg["expert"])
    if cfg["atom_attributes"]:
        args["atom_attr_dim"] = NUM_ATOM_ATTRIBUTES
    spec = cfg["learnable_cutoffs"]
    learnable = None
    if spec["enabled"]:
        bounds = {k: float(spec[k]) for k in ("lower", "upper", "ramp")}
        learnable = LearnableCutoffs(cfg["cutoffs"], **bounds)
    trunk = None
    if cfg["shared_trunk"]["enabled"]:
        trunk, experts = _trunk_and_branches(cls, cfg, args, learnable)
    elif variant == "plain":
        plain = dict(cfg["plain"])
        cutoff = plain.pop("cutoff")
        experts = [_make_expert(cls, cutoff, {**args, **plain})]
    elif variant == "one_expert":
        experts = [_make_expert(cls, cfg["cutoffs"][int(cfg["one_expert"])], args)]
    elif learnable is not None:
        # Every expert's own basis and envelope span the largest cutoff it may learn.
        experts = [_make_expert(cls, spec["upper"], args) for _ in cfg["cutoffs"]]
    else:
        experts = [_make_expert(cls, c, args) for c in cfg["cutoffs"]]
    gate = _make_gate(cfg, len(experts)) if variant in ROUTED_VARIANTS else None
    model = MIMoE(
        experts,
        gate,
        out_channels=int(cfg["out_channels"]),
        variant=variant,
        top_k=int(cfg["top_k"]),
        temperature=float(cfg["temperature"]),
        balance_weight=float(cfg["balance_weight"]),
        variance_head=bool(cfg["variance_head"]),
        learnable_cutoffs=learnable,
        trunk=trunk,
    )
    model.config = cfg
    return model


def _trunk_and_branches(
    cls: type[Expert],
    cfg: Mapping[str, Any],
    args: Mapping[str, Any],
    learnable: LearnableCutoffs | None,
) -> tuple[Expert, list[Expert]]:
    """The shared trunk (its first ``layers`` blocks at its cutoff) and the K branches."""
    shared = int(cfg["shared_trunk"]["layers"])
    depth = int(args.get("num_layers", 3))
    search_radius = _search_radius(cfg)
    trunk_cutoff = cfg["shared_trunk"]["cutoff"] or search_radius
    trunk = _make_expert(cls, trunk_cutoff, {**args, "num_layers": shared}, role="trunk")
    # The trunk embeds the chemical attributes; the branches read its states.
    branch_args = {k: v for k, v in args.items() if k != "atom_attr_dim"}
    branch_args["num_layers"] = depth - shared
    branch_cutoffs = (
        [search_radius] * len(cfg["cutoffs"]) if learnable is not None else cfg["cutoffs"]
    )
    branches = [_make_expert(cls, c, branch_args, role="branch") for c in branch_cutoffs]
    return trunk, branches
