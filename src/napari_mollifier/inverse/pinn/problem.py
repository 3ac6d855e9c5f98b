"""The PINN problem on a padded grid: data on the device, coordinates, fields from the network's
output, and patch draws. The residuals and loss terms on a window are in :mod:`.losses`."""

from __future__ import annotations

import numpy as np

from ...mollifier.boundary import (
    boundary_derivatives,
    extension_operator,
    supported,
    wall_line_density,
)
from ...physics.chromatin import g
from ..prepared import PreparedFields, valid_centres
from .options import PinnOptions
from .warm_start import WarmStart


class PinnProblem:
    """Padded data (float32 on ``device``), the mollifier layers and the residual centres.

    The grid is padded by the kernel radius ``r`` (pixels) on every side so that a window of
    ``n + 2 r`` pixels gives ``n`` residual pixels. The mask outline is the nuclear envelope, a
    no-flux wall: the data are extended across it (and across a "wall" / "periodic" image
    border) by the reflection of :func:`napari_mollifier.mollifier.extension_operator`, the
    network's field corrections are zero outside the mask, and the residual centres cover every
    mask pixel whose kernel support is known (all of them unless an "open" image border cuts
    the nucleus). A lamina affinity ``h`` adds the wall term ``-h (lap eta) * w`` to the rate
    residual and ``+h (lap eta) * w`` to the nucleoplasm residual (``w`` the wall's line
    density), as in the direct estimator.
    """

    def __init__(self, prepared: PreparedFields, warm: WarmStart, config, options, device):
        self.config, self.options, self.device = config, options, device
        self.spacing = prepared.spacing
        self.params = prepared.params
        self.both_equations = _both_equations(options, prepared)
        self.equations = "both" if self.both_equations else "rate"
        self._build_layers(config.kernel, warm.width)
        self.shape = prepared.shape
        self._pad_data(prepared, warm)
        # pixel-centre coordinates, model units, centred on the image (padded grid)
        height, width = self.shape
        self.y0 = (height - 1) / 2.0 + self.radius
        self.x0 = (width - 1) / 2.0 + self.radius
        self.patch = int(min(config.pinn.patch_size, height, width))

    def _build_layers(self, kernel: str, width: float) -> None:
        import torch

        from ...mollifier import MollifierLayer

        h = self.spacing

        def layer(derivative):
            return MollifierLayer(
                ndim=2,
                kernel=kernel,
                width=width,
                spacing=(h, h),
                derivatives=(derivative,),
                boundary="valid",
                dtype=torch.float32,
            ).to(self.device)

        # one layer per derivative: each channel gets only the derivative the residuals use
        self.layer_value = layer("value")
        self.layer_lap = layer("laplacian")
        self.layer_bih = layer("biharmonic")
        self.layer = self.layer_value  # mollifies the autodiff strong-form residual
        self.radius = int(max(self.layer_value.radius_pixels))
        self.width = float(width)

    def _pad_data(self, prepared: PreparedFields, warm: WarmStart) -> None:
        import torch

        radius, mask = self.radius, prepared.mask
        pad = ((radius, radius), (radius, radius))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self._pad = pad
        self._fields_np = np.stack([prepared.phi_w, prepared.phi_d])
        self.extension = extension_operator(mask, radius, prepared.image_border)
        self.data_clean = as_t(self.extension.apply(self._fields_np))
        self.data = self.data_clean
        self.mask_np = mask
        self.mask = as_t(np.pad(mask.astype(np.float32), pad))
        self.centres_np = supported(self.extension, mask)
        if self.config.method == "pinn-autodiff":
            # strong-form residuals at pixels outside the nucleus mean nothing: keep the
            # whole kernel support inside the mask there
            self.centres_np = valid_centres(mask, radius)
        if not self.centres_np.any():
            raise ValueError(
                f"PINN: no pixel of the nucleus mask has its whole kernel support (radius "
                f"{radius} pixels, {warm.width:.3g} model units) known: the nucleus is thinner "
                "than the kernel or cut by an open image border; use a smaller mollifier width"
            )
        self._wall_term(prepared, warm.width)
        self.centres = as_t(np.pad(self.centres_np.astype(np.float32), pad))
        self.log_ref = as_t(np.pad(warm.log_ref, pad, mode="reflect"))
        self.noise = as_t(np.array([warm.noise_w, warm.noise_d])).reshape(2, 1, 1)
        phi_w, phi_d = prepared.phi_w[mask], prepared.phi_d[mask]
        self.data_mean = as_t(np.array([phi_w.mean(), phi_d.mean()])).reshape(2, 1, 1)
        spread = [max(phi_w.std(), 1e-3), max(phi_d.std(), 1e-3)]
        self.data_std = as_t(np.array(spread)).reshape(2, 1, 1)
        self.phi_e_mean = float(np.mean((1 - prepared.phi_w - prepared.phi_d)[mask]) / 2)

    def use_data(self, perturb_seed: int | None) -> None:
        """Train on the data (None) or on the data plus a fresh draw of its estimated noise.

        Randomised data per ensemble member ("randomise then optimise"): the spread of the
        members then includes how the data noise propagates into lambda, not only the spread of
        the optimisation.
        """
        import torch

        if perturb_seed is None:
            self.data = self.data_clean
            return
        rng = np.random.default_rng(perturb_seed)
        sigma = self.noise.detach().cpu().numpy().reshape(2, 1, 1)
        noisy = self._fields_np + sigma * rng.standard_normal(self._fields_np.shape)
        self.data = torch.as_tensor(
            self.extension.apply(noisy), dtype=torch.float32, device=self.device
        )

    def _wall_term(self, prepared: PreparedFields, width: float) -> None:
        """``h (lap eta) * w`` on the image grid (None without lamina affinity)."""
        import torch

        self.lamina = float(prepared.params.lamina_affinity)
        self.wall_lap = None
        if not self.lamina:
            return
        wall = wall_line_density(prepared.mask, self.spacing, prepared.image_border)
        lap = boundary_derivatives(
            wall,
            prepared.mask,
            width,
            self.spacing,
            prepared.image_border,
            derivatives=("laplacian",),
            kernel=self.config.kernel,
        )[0]["laplacian"][0]
        self.wall_lap = torch.as_tensor(self.lamina * lap, dtype=torch.float32, device=self.device)

    def wall(self, top: int, left: int, rows: int, cols: int):
        """The lamina wall term on residual pixels [top, top + rows) x [left, left + cols) of
        the image grid, or None."""
        if self.wall_lap is None:
            return None
        return self.wall_lap[top : top + rows, left : left + cols]

    def coords(self, top: int, left: int, rows: int, cols: int):
        """(rows * cols, 2) coordinates (y, x) in model units of a padded-grid window."""
        import torch

        ys = torch.arange(top, top + rows, device=self.device, dtype=torch.float32) - self.y0
        xs = torch.arange(left, left + cols, device=self.device, dtype=torch.float32) - self.x0
        yy, xx = torch.meshgrid(ys * self.spacing, xs * self.spacing, indexing="ij")
        return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)

    def fields_from_output(self, out, top, left, rows, cols):
        """Raw outputs (3, rows, cols) -> phi_w, phi_d, lambda, log lambda (rows, cols)."""
        import torch

        if self.options.fields_mode == "correction":
            window = self.data[:, top : top + rows, left : left + cols]
            inside = self.mask[top : top + rows, left : left + cols]
            # outside the nucleus the fields are the reflected data (the wall conditions)
            correction = out[:2] * inside
            if self.options.zero_mean_corrections:
                # noise has zero mean: a correction that shifts a field's mean would shift
                # <phi_e> / <phi_h> and, through the balance <lambda phi_e> = <phi_h>, lambda
                mean = (correction * inside).sum((1, 2), keepdim=True) / inside.sum().clamp_min(1)
                correction = correction - mean
            fields = window + self.options.correction_scale * self.noise * correction
        else:
            window = self.data[:, top : top + rows, left : left + cols]
            inside = self.mask[top : top + rows, left : left + cols]
            fields = self.data_mean + self.data_std * out[:2]
            fields = inside * fields + (1 - inside) * window  # reflected data outside
        log_lam = self.log_ref[top : top + rows, left : left + cols] + out[2]
        return fields[0], fields[1], torch.exp(log_lam), log_lam

    def g(self, phi_h):
        return g(phi_h, self.params.phi_max)

    def draw_patch(self, rng) -> tuple[int, int]:
        """Top-left of a padded window whose core lies in the image and touches the mask."""
        height, width = self.shape
        p = self.patch
        best = (0, 0, -1.0)
        for _ in range(10):
            top = int(rng.integers(0, height - p + 1))
            left = int(rng.integers(0, width - p + 1))
            frac = float(self.centres_np[top : top + p, left : left + p].mean())
            if frac > best[2]:
                best = (top, left, frac)
            if frac >= 0.25:
                break
        return best[0], best[1]


def _both_equations(options: PinnOptions, prepared: PreparedFields) -> bool:
    # a single-channel density has phi_e uniform by calibration, and such fields violate
    # mu_w = const: the second equation only helps when phi_e is observed (two channels)
    return options.equations == "both" or (options.equations == "auto" and prepared.phi_e_observed)
