"""The one configuration type shared by the widget, the batch runner and every output.

``InferenceConfig`` is versioned and nested: settings every estimator reads sit at the top,
each estimator's own settings in its section (``config.direct``, ``config.pinn``), the
rendering of localisation tables in ``config.render``, the physics in ``config.model`` and
``config.calibration``. Every field is typed and range-checked (:mod:`napari_mollifier.schema`):
a wrong value is refused with a message naming the field, what was expected and what was found.
Files in the flat layout of version 1 still load (with a deprecation warning).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..choices import IMAGE_BORDERS, KERNELS, RENDER_METHODS, is_device_name, is_z_plane
from ..physics.params import CalibrationParams, ModelParams
from ..schema import ConfigError, from_dict, option, to_dict, validate
from .config_files import read_config_file
from .pinn.options import PinnOptions
from .registry import estimator_names

CONFIG_VERSION = 2
#: Flat fields of version-1 configs -> (section, field) of the current layout.
LEGACY_KEYS = {
    "backbone": ("pinn", "backbone"),
    "steps": ("pinn", "steps"),
    "learning_rate": ("pinn", "learning_rate"),
    "patch_size": ("pinn", "patch_size"),
    "ensemble_size": ("pinn", "ensemble_size"),
    "render_pixel_size_nm": ("render", "pixel_size_nm"),
    "render_method": ("render", "method"),
}
SECTIONS = ("model", "calibration", "render", "direct", "pinn")


@dataclass
class DirectOptions:
    """Settings of the direct weak-form estimator (``config.direct``).

    Attributes
    ----------
    ladder_factor : float
        Ratio between neighbouring widths of the automatic-width ladder.
    ladder_size : int
        Most widths on the ladder.
    """

    ladder_factor: float = option(1.2, low=1, high=4, low_open=True)
    ladder_size: int = option(9, low=2, high=50)

    def __post_init__(self) -> None:
        validate(self, prefix="direct.")


@dataclass
class RenderOptions:
    """How a localisation table becomes a density image (``config.render``).

    Attributes
    ----------
    pixel_size_nm : float
        Pixel side of the rendered density (nm).
    method : {"gaussian", "histogram"}
        Each localisation as a Gaussian of its precision, or a plain 2D histogram.
    max_render_megapixels : float
        Largest rendered image (million pixels); a table spread wider is refused before
        anything is allocated (``io.render.MAX_RENDER_MEGAPIXELS``).
    min_localisations_per_megapixel : float
        A table with fewer localisations per million pixels of the image it spans is refused
        before rendering (stray localisations, a unit error; ``io.render``'s constant).
    """

    pixel_size_nm: float = option(20.0, low=0.1, high=10_000, unit="nm", doc="render pixel size")
    method: str = option("gaussian", choices=RENDER_METHODS, doc="render method")
    max_render_megapixels: float = option(
        256.0, low=0, low_open=True, unit="megapixels", doc="largest rendered image"
    )
    min_localisations_per_megapixel: float = option(
        100.0, low=0, unit="per megapixel", doc="sparsest table rendered"
    )

    def __post_init__(self) -> None:
        validate(self, prefix="render.")


@dataclass
class InferenceConfig:
    """Everything that determines a rate-map inference, serialisable to JSON / YAML.

    Lengths are in model units unless the name says ``_nm``; ``model.nm_per_unit`` converts.

    Attributes
    ----------
    version : int
        Layout version of the config (written to every file).
    method : {"direct", "pinn", "pinn-autodiff"} or a registered estimator
        "direct": weak-form estimator (a few convolutions, instant). "pinn": mollified PINN.
        "pinn-autodiff": the same network with nested autograd derivatives (for comparison).
    mollifier_width : float or None
        Support radius (sigma for "gaussian") of the mollifier in model units; None chooses it
        from the data and records the choice in the result.
    kernel : {"bump", "polynomial", "gaussian"}
        Mollifier profile.
    image_border : {"open", "wall", "periodic"}
        What the image border is when the fields do not say: "open" (a crop; the map stops short
        of a border that cuts the nucleus), "wall" (the border is the envelope), "periodic".
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
    seed : int
        Seeds every random choice (patches, initialisation, ensembles); 0 .. 2^32 - 1.
    pixel_size_nm : float or None
        Pixel size (nm) for an image whose file carries none; a file's own pixel size wins.
    density_channel : int, "phases" or None
        Which channel of a multi-channel image is the chromatin density, or "phases" when its
        two channels are (phi_w, phi_d) phase fields. None: multi-channel images are phases
        only when their channels are named phi_w, phi_d; otherwise they are refused with a
        message asking for this field (``ChromatinFields.from_density(channel=)``).
    z_plane : int, "max", "mean", "sum" or None
        How a Z (or T) stack image file becomes one plane: a plane index (0-based) or a
        projection. None: stacks are refused with a message asking for this field (the batch
        runner's ``--z-plane``). Not shown in the widget: napari's own sliders pick the plane of
        a layer.
    estimate_lamina_affinity : bool
        Estimate the lamina affinity of each nucleus from the nucleoplasm equation
        (:func:`~napari_mollifier.inverse.estimate_lamina_affinity`) and use it instead of
        ``model.lamina_affinity``; the value, its spread and the source go in the metadata.
        Needs a wall (a mask outline inside the image, or ``image_border="wall"``). Validated
        on two-field data (phase fields, two-channel images); from a single-channel density
        it is not (wrong sign on the bundled sample), and the metadata says so.
    model, calibration
        Physics constants and the density -> volume fraction calibration.
    render, direct, pinn
        Rendering of localisation tables and the estimators' own settings.
    """

    version: int = option(CONFIG_VERSION, low=CONFIG_VERSION, high=CONFIG_VERSION)
    method: str = option("direct", choices=estimator_names, doc="estimator")
    mollifier_width: float | None = option(None, low=0, low_open=True, unit="model units")
    kernel: str = option("polynomial", choices=KERNELS, doc="mollifier profile")
    image_border: str = option("open", choices=IMAGE_BORDERS, doc="image border")
    device: str = option("auto", check=is_device_name, expect="auto, cpu, cuda, cuda:N or mps")
    seed: int = option(0, low=0, high=2**32 - 1, doc="random seed")
    pixel_size_nm: float | None = option(None, low=0.1, high=10_000, unit="nm")
    density_channel: int | str | None = option(
        None, check=lambda v: v == "phases" or (isinstance(v, int) and v >= 0),
        expect="a channel index (0, 1, ...) or 'phases'", doc="density channel",
    )  # fmt: skip
    z_plane: int | str | None = option(
        None, check=is_z_plane, expect="a plane index (0, 1, ...) or max, mean, sum",
        doc="plane (or projection) of image stacks",
    )  # fmt: skip
    estimate_lamina_affinity: bool = option(False, doc="estimate the lamina affinity per nucleus")
    model: ModelParams = option(factory=ModelParams)
    calibration: CalibrationParams = option(factory=CalibrationParams)
    render: RenderOptions = option(factory=RenderOptions)
    direct: DirectOptions = option(factory=DirectOptions)
    pinn: PinnOptions = option(factory=PinnOptions)

    def __post_init__(self) -> None:
        for name, cls in _section_types().items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, from_dict(cls, value, prefix=f"{name}."))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError) naming the field, what was expected and
        what was found."""
        validate(self)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> InferenceConfig:
        """From a mapping in the current layout or the flat layout of version 1."""
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"config: expected a mapping of fields, found {type(data).__name__}")
        return from_dict(cls, _migrate(dict(data or {})))

    def replace(self, **changes) -> InferenceConfig:
        """A copy with some fields changed; a dict for a section merges into it
        (``config.replace(pinn={"steps": 100})``)."""
        data = self.to_dict()
        for key, value in _moved_legacy(changes).items():
            if key in SECTIONS and isinstance(value, dict):
                data[key].update(value)
            elif key in SECTIONS:
                data[key] = to_dict(value)
            else:
                data[key] = value
        return InferenceConfig.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        """Write as YAML (``.yaml`` / ``.yml``) or JSON (anything else)."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=True))
        else:
            path.write_text(self.to_json() + "\n")

    @classmethod
    def from_file(cls, path: str | Path) -> InferenceConfig:
        """Read a YAML or JSON config, or the JSON sidecar of an output (its ``"config"``);
        every error names the file."""
        path = Path(path)
        data = read_config_file(path)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    # --- version-1 names, read-only ------------------------------------------------------
    def __getattr__(self, name):
        # only called for names not found normally: the flat fields of version 1
        if name in LEGACY_KEYS:
            section, key = LEGACY_KEYS[name]
            warnings.warn(
                f"InferenceConfig.{name} is deprecated; use config.{section}.{key}",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(getattr(self, section), key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _section_types() -> dict[str, type]:
    return {
        "model": ModelParams,
        "calibration": CalibrationParams,
        "render": RenderOptions,
        "direct": DirectOptions,
        "pinn": PinnOptions,
    }


def _moved_legacy(data: dict) -> dict:
    """Flat version-1 keys moved into their sections (with a deprecation warning)."""
    legacy = [k for k in data if k in LEGACY_KEYS]
    if not legacy:
        return data
    moves = ", ".join(f"{k} -> {LEGACY_KEYS[k][0]}.{LEGACY_KEYS[k][1]}" for k in legacy)
    warnings.warn(
        f"config fields {legacy} are the flat layout of version 1; they now live in sections "
        f"({moves})",
        DeprecationWarning,
        stacklevel=3,
    )
    out = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    for key in legacy:
        section, name = LEGACY_KEYS[key]
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            return data  # let the section's own type error speak
        target.setdefault(name, data[key])
    return out


def _migrate(data: dict) -> dict:
    version = data.get("version", 1)
    if version == 1 or isinstance(version, int) and version < CONFIG_VERSION:
        data = _moved_legacy({k: v for k, v in data.items() if k != "version"})
        data["version"] = CONFIG_VERSION
    return data


__all__ = [
    "CONFIG_VERSION",
    "ConfigError",
    "DirectOptions",
    "InferenceConfig",
    "PinnOptions",
    "RenderOptions",
]
