"""The one configuration type shared by the widget, the batch runner and every output."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..physics.params import CalibrationParams, ModelParams

METHODS = ("direct", "pinn", "pinn-autodiff")
BACKBONES = ("pinn", "pirate", "pinnsformer")
DEVICES = ("auto", "cpu", "cuda", "mps")
KERNELS = ("bump", "polynomial", "gaussian")
RENDER_METHODS = ("histogram", "gaussian")


@dataclass
class InferenceConfig:
    """Everything that determines a rate-map inference, serialisable to JSON / YAML.

    Lengths are in model units unless the name says ``_nm``. ``ModelParams.nm_per_unit``
    converts between the two.

    Attributes
    ----------
    method : {"direct", "pinn", "pinn-autodiff"}
        "direct": weak-form estimator (a few convolutions, instant). "pinn": mollified PINN.
        "pinn-autodiff": the same network with nested autograd derivatives (for comparison).
    mollifier_width : float or None
        Support radius (sigma for "gaussian") of the mollifier in model units; None chooses it
        from the data and records the choice in the result.
    kernel : {"bump", "polynomial", "gaussian"}
        Mollifier profile.
    model, calibration
        Physics constants and the density -> volume fraction calibration.
    backbone, steps, learning_rate, patch_size, ensemble_size
        PINN settings (ignored by "direct").
    device : {"auto", "cpu", "cuda", "mps"}
    seed : int
        Seeds every random choice (patches, initialisation, ensembles).
    pixel_size_nm : float or None
        Overrides the pixel size of an image whose file carries none.
    render_pixel_size_nm, render_method
        How localisation tables are rendered to a density image before inference.
    """

    method: str = "direct"
    mollifier_width: float | None = None
    kernel: str = "polynomial"
    model: ModelParams = field(default_factory=ModelParams)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    backbone: str = "pirate"
    steps: int = 2000
    learning_rate: float = 2e-3
    patch_size: int = 64
    ensemble_size: int = 3
    device: str = "auto"
    seed: int = 0
    pixel_size_nm: float | None = None
    render_pixel_size_nm: float = 20.0
    render_method: str = "gaussian"

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelParams.from_dict(self.model)
        if isinstance(self.calibration, dict):
            self.calibration = CalibrationParams.from_dict(self.calibration)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, what was expected and what was found."""
        for name, allowed in (
            ("method", METHODS),
            ("backbone", BACKBONES),
            ("device", DEVICES),
            ("kernel", KERNELS),
            ("render_method", RENDER_METHODS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"config field {name!r}: expected one of {allowed}, found {value!r}"
                )
        positive = ["steps", "learning_rate", "patch_size", "ensemble_size", "render_pixel_size_nm"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"config field {name!r}: expected > 0, found {getattr(self, name)!r}"
                )
        for name in ("mollifier_width", "pixel_size_nm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"config field {name!r}: expected > 0 or None, found {value!r}")
        if not self.model.nm_per_unit > 0:
            raise ValueError(
                f"config field 'model.nm_per_unit': expected > 0, found {self.model.nm_per_unit!r}"
            )

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> InferenceConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown config field(s) {sorted(unknown)}; expected some of {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes) -> InferenceConfig:
        """A copy with some fields changed (nested dicts for ``model`` / ``calibration`` merge)."""
        data = self.to_dict()
        for key, value in changes.items():
            if key in ("model", "calibration") and isinstance(value, dict):
                data[key].update(value)
            elif key in ("model", "calibration"):
                data[key] = asdict(value)
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
            path.write_text(self.to_json())

    @classmethod
    def from_file(cls, path: str | Path) -> InferenceConfig:
        """Read a YAML or JSON config; errors name the file."""
        path = Path(path)
        try:
            text = path.read_text()
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read config ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: expected a mapping of config fields, found {type(data).__name__}"
            )
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
