"""Problems of the paper benchmark (issue 8): data on a grid plus the two residual branches.

Each :class:`Problem` holds noisy observations on a regular grid, the true parameter
``lambda`` to recover, and knows how to evaluate its PDE residual two ways from the network's
outputs:

- ``residual_autodiff``: pointwise, derivatives by nested ``torch.autograd.grad`` with respect to
  the input coordinates (the classic PINN);
- ``residual_mollifier``: on the grid, the weak form ``eta * R`` with every derivative moved onto
  the kernel by :class:`~napari_mollifier.mollifier.MollifierLayer` (``boundary="valid"``: the
  result covers the interior, ``crop`` pixels in from each side).

Problems (orders 1, 2, 4):

- ``langevin``  (1D, 1st order): ``du/dt = u + lambda(t)``; data u, recover the forcing.
- ``heat``      (2D, 2nd order): ``0 = lambda lap u + m``; data u, m known, recover lambda.
- ``heat-div``  (2D, 2nd order): ``0 = div(lambda grad u) + m`` (divergence form).
- ``chromatin`` (2D, 4th order): the project's steady state
  ``0 = lap(mu_d) + 2 (lambda phi_e - phi_h)``, ``mu_d = g(phi_h) - phi_e - l^2 lap(phi_d)``;
  data phi_d and phi_w, recover lambda = Gamma_me / Gamma_ac. The fields are *manufactured*
  (smooth periodic band-limited phi_d, phi_w) and lambda is the one they imply exactly,
  ``lambda = (phi_h - lap(mu_d) / 2) / phi_e`` with spectral derivatives, so the data are a
  steady state of the model without simulation error (see docs/benchmarks_paper.md).

Coordinates are model units; 2D coordinate columns are (y, x) (rows, columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PROBLEM_ORDERS = {"langevin": 1, "heat": 2, "heat-div": 2, "chromatin": 4}


@dataclass
class Problem:
    """One benchmark instance.

    Attributes
    ----------
    name : str
        Key of :data:`PROBLEM_ORDERS`.
    order : int
        Highest derivative order in the residual.
    coords : ndarray (N, ndim) float64
        Grid coordinates (model units), C-order over ``shape``; 2D columns (y, x).
    shape : tuple of int
        Grid shape, ``(L,)`` or ``(H, W)``.
    spacing : tuple of float
        Grid spacing per axis (model units).
    data : ndarray (C, *shape)
        Noisy observed fields (the network fits these).
    clean : ndarray (C, *shape)
        Noise-free fields.
    truth : ndarray shape
        True parameter lambda.
    known : dict name -> ndarray shape
        Known inputs of the residual (heat source ``m``).
    positive : bool
        lambda > 0 (the network outputs log lambda).
    residual_scale : float
        Typical size of the residual terms (from the data), used to normalise the loss.
    noise : float
        Noise standard deviation relative to each observed field's standard deviation.
    width : float
        Mollifier width (model units, support radius of the polynomial kernel).
    """

    name: str
    order: int
    coords: np.ndarray
    shape: tuple
    spacing: tuple
    data: np.ndarray
    clean: np.ndarray
    truth: np.ndarray
    known: dict = field(default_factory=dict)
    positive: bool = True
    residual_scale: float = 1.0
    noise: float = 0.0
    width: float = 0.0
    interface_length: float = 0.03
    phi_max: float = 0.7

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_fields(self) -> int:
        return int(self.data.shape[0])

    # --- mollifier ---------------------------------------------------------------------------
    def layers(self, dtype=None):
        """The mollifier layers of the residual (built once per run)."""
        import torch

        from napari_mollifier.mollifier import MollifierLayer

        dtype = dtype or torch.float32
        kw = dict(
            ndim=self.ndim, width=self.width, spacing=self.spacing, boundary="valid", dtype=dtype
        )
        if self.name == "langevin":
            return {"main": MollifierLayer(derivatives=("value", "dx"), **kw)}
        if self.name == "heat":
            return {"main": MollifierLayer(derivatives=("value", "laplacian"), **kw)}
        if self.name == "heat-div":
            return {"main": MollifierLayer(derivatives=("value", "dx", "dy", "laplacian"), **kw)}
        # chromatin: one width for both layers, set by the 4th-order resolution requirement
        return {
            "lap": MollifierLayer(derivatives=("value", "laplacian"), **kw),
            "bih": MollifierLayer(derivatives=("biharmonic",), **kw),
        }

    @property
    def crop(self) -> int:
        """Pixels the mollified residual loses on each side (kernel support radius)."""
        return int(np.floor(self.width / min(self.spacing) * (1 - 1e-12)))

    def interior(self, grid):
        """Crop ``crop`` pixels per side of the trailing spatial axes (numpy or torch)."""
        c = self.crop
        if self.ndim == 1:
            return grid[..., c : grid.shape[-1] - c]
        return grid[..., c : grid.shape[-2] - c, c : grid.shape[-1] - c]

    def residual_mollifier(self, fields, lam, layers, known_mollified):
        """Weak-form residual ``eta * R`` on the interior grid.

        fields : tensor (C, *shape) physical fields; lam : tensor shape.
        known_mollified : dict of mollified known inputs (interior grids), from
        :meth:`mollify_known`. Returns a tensor of the interior shape.
        """
        import torch

        if self.name == "langevin":
            # eta * (u' - u - lambda) = eta' * u - eta * u - eta * lambda: all linear
            out = layers["main"](torch.stack([fields[0], lam])[None])
            return out["dx"][0, 0] - out["value"][0, 0] - out["value"][0, 1]
        lam_c = self.interior(lam)
        if self.name == "heat":
            out = layers["main"](fields[0][None, None])
            return lam_c * out["laplacian"][0, 0] + known_mollified["source"]
        if self.name == "heat-div":
            out = layers["main"](torch.stack([fields[0], lam])[None])
            grad_dot = out["dx"][0, 0] * out["dx"][0, 1] + out["dy"][0, 0] * out["dy"][0, 1]
            return lam_c * out["laplacian"][0, 0] + grad_dot + known_mollified["source"]
        phi_d, phi_w = fields[0], fields[1]
        phi_h, phi_e = (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2
        g = phi_h * (self.phi_max - phi_h) * (self.phi_max - 2 * phi_h)
        lap = layers["lap"](torch.stack([g - phi_e, phi_e, phi_h])[None])
        bih = layers["bih"](phi_d[None, None])["biharmonic"][0, 0]
        lap_mu = lap["laplacian"][0, 0] - self.interface_length**2 * bih
        return lap_mu + 2 * (lam_c * lap["value"][0, 1] - lap["value"][0, 2])

    def mollify_known(self, layers, dtype=None, device=None):
        """``eta * m`` for the heat source (interior grid tensor); empty for other problems."""
        import torch

        if "source" not in self.known:
            return {}
        m = torch.as_tensor(self.known["source"], dtype=dtype or torch.float32, device=device)
        return {"source": layers["main"](m[None, None])["value"][0, 0]}

    # --- autodiff ----------------------------------------------------------------------------
    def residual_autodiff(self, fields, lam, coords, known):
        """Pointwise residual by nested autograd.

        fields : list of (N,) tensors (physical fields at ``coords``), lam : (N,),
        coords : (N, ndim) tensor with ``requires_grad``; known : dict name -> (N,) tensor.
        Returns (N,).
        """
        import torch

        def d(f, axis):
            (grad,) = torch.autograd.grad(f.sum(), coords, create_graph=True)
            return grad[:, axis]

        def lap(f):
            return sum(d(d(f, a), a) for a in range(coords.shape[1]))

        if self.name == "langevin":
            u = fields[0]
            return d(u, 0) - u - lam
        if self.name == "heat":
            return lam * lap(fields[0]) + known["source"]
        if self.name == "heat-div":
            u = fields[0]
            grad_u = torch.autograd.grad(u.sum(), coords, create_graph=True)[0]
            grad_l = torch.autograd.grad(lam.sum(), coords, create_graph=True)[0]
            return lam * lap(u) + (grad_u * grad_l).sum(1) + known["source"]
        phi_d, phi_w = fields
        phi_h, phi_e = (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2
        g = phi_h * (self.phi_max - phi_h) * (self.phi_max - 2 * phi_h)
        mu_d = g - phi_e - self.interface_length**2 * lap(phi_d)
        return lap(mu_d) + 2 * (lam * phi_e - phi_h)


def _width(order: int, spacing: float, factor: float) -> float:
    from napari_mollifier.mollifier import min_width

    return factor * min_width("polynomial", order, spacing)


def make_problem(
    name: str, n: int, noise: float, seed: int = 0, width_factor: float = 1.25
) -> Problem:
    """Build a problem on an ``n`` (1D) or ``n x n`` (2D) grid.

    ``noise`` is the Gaussian noise std relative to each observed field's std (0.05 = 5 %).
    ``width_factor`` multiplies the smallest mollifier width the engine accepts for the
    problem's order (``min_width``, about 6-8 pixels for the polynomial kernel).
    """
    if name not in PROBLEM_ORDERS:
        raise ValueError(f"unknown problem {name!r}: expected one of {tuple(PROBLEM_ORDERS)}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0 (fraction of the field's std), found {noise}")
    order = PROBLEM_ORDERS[name]
    if name == "langevin":
        from napari_mollifier.physics.langevin import make_langevin_data

        d = make_langevin_data(n=n, duration=2.0, noise=noise, seed=seed)
        return Problem(
            name, order, d.t[:, None], (n,), (d.dt,), d.u_noisy[None], d.u_clean[None],
            d.forcing, positive=False, residual_scale=float(np.std(d.u_noisy)), noise=noise,
            width=_width(order, d.dt, width_factor),
        )  # fmt: skip
    if name in ("heat", "heat-div"):
        from napari_mollifier.physics.heat import make_heat_data

        form = "divergence" if name == "heat-div" else "nondivergence"
        d = make_heat_data(n=n, box=1.0, noise=noise, form=form, seed=seed)
        coords = np.stack([d.y.ravel(), d.x.ravel()], axis=1)
        return Problem(
            name, order, coords, (n, n), (d.spacing, d.spacing), d.u_noisy[None],
            d.u_clean[None], d.diffusivity, known={"source": d.source},
            residual_scale=float(np.std(d.source) + np.mean(np.abs(d.source))), noise=noise,
            width=_width(order, d.spacing, width_factor),
        )  # fmt: skip
    return _make_chromatin(n, noise, seed, width_factor)


def _spectral_laplacian(f: np.ndarray, box: float) -> np.ndarray:
    n = f.shape[0]
    k = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return np.real(np.fft.ifft2(-k2 * np.fft.fft2(f)))


def _make_chromatin(n: int, noise: float, seed: int, width_factor: float) -> Problem:
    """Manufactured chromatin steady state on a periodic box of 4 x 4 model units.

    phi_d and phi_w are sums of a few Fourier modes (wavelengths 4 and 2 units, so the
    cubic ``g(phi_h)`` stays band-limited on grids of n >= 32 and spectral derivatives are
    exact); lambda follows from the steady-state relation. Heterochromatin-rich regions are
    nucleoplasm-poor, as in the model.
    """
    from napari_mollifier.physics.params import ModelParams

    params = ModelParams()
    rng = np.random.default_rng(seed)
    box = 4.0
    h = box / n
    axis = (np.arange(n) + 0.5) * h
    x, y = np.meshgrid(axis, axis)
    k = 2 * np.pi / box

    def modes(count, amp, kmax):
        total = np.zeros_like(x)
        for _ in range(count):
            kx, ky = rng.integers(-kmax, kmax + 1, 2)
            if kx == 0 and ky == 0:
                kx = 1
            total += amp * rng.normal() * np.cos(k * (kx * x + ky * y) + rng.uniform(0, 2 * np.pi))
        return total

    # wavelengths 4 and 2 units; larger amplitudes or shorter waves make lambda negative
    pattern = modes(4, 1.0, 1) + modes(2, 0.3, 2)
    pattern = pattern / np.max(np.abs(pattern))
    phi_d = 0.1 + 0.2 * pattern
    phi_w = 0.5 - 0.12 * pattern + 0.03 * modes(2, 1.0, 1)
    phi_h, phi_e = (1 - phi_w + phi_d) / 2, (1 - phi_w - phi_d) / 2
    pm, ell = params.phi_max, params.interface_length
    g = phi_h * (pm - phi_h) * (pm - 2 * phi_h)
    mu_d = g - phi_e - ell**2 * _spectral_laplacian(phi_d, box)
    lam = (phi_h - _spectral_laplacian(mu_d, box) / 2) / phi_e
    if np.min(lam) <= 0 or np.min(phi_e) <= 0:  # pragma: no cover - guarded by the amplitudes
        raise RuntimeError(f"manufactured chromatin fields invalid for seed {seed}")
    clean = np.stack([phi_d, phi_w])
    rng_noise = np.random.default_rng(seed + 1000)
    std = clean.reshape(2, -1).std(axis=1)[:, None, None]
    data = clean + noise * std * rng_noise.standard_normal(clean.shape)
    coords = np.stack([y.ravel(), x.ravel()], axis=1)
    return Problem(
        "chromatin", 4, coords, (n, n), (h, h), data, clean, lam,
        residual_scale=float(2 * np.mean(phi_h)), noise=noise,
        width=_width(4, h, width_factor), interface_length=ell, phi_max=pm,
    )  # fmt: skip
