"""Forward simulator of the chromatin model: synthetic steady states with a known rate map.

The semi-implicit Fourier scheme of MODEL.md on a periodic ``L x L`` box (torch FFT, float64,
CPU or GPU). Linear terms (``l^2 k^4``, a stabilisation ``S k^2`` and ``c phi_d`` with
``c = mean(Gamma_me) + Gamma_ac``) are implicit, the nonlinear chemical potential and the
reactions explicit:

    phi_d^{n+1} = F^-1[(F phi_d + dt(-k^2 F(g - phi_e) + S k^2 F phi_d
                         + F(2(Gamma_me phi_e - Gamma_ac phi_h) + c phi_d)))
                        / (1 + dt(l^2 k^4 + S k^2 + c))]
    phi_w^{n+1} = F^-1[(F phi_w + dt(-k^2 F(-g - phi_e) + S k^2 F phi_w))
                        / (1 + dt(l^2 k^4 + S k^2))]

The fixed points of the scheme are exactly the steady states of the PDE (the added linear terms
cancel there), so the time step only changes the path, not the end state; the end state is
checked by the convergence report ``max |d phi / dt|``.

Closed domains (``domain="box"`` or a nucleus mask): the same scheme with no-flux walls, on a
masked finite-volume grid (:mod:`napari_mollifier.physics.closed`); the periodic path above is
untouched by them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .chromatin import g as g_bulk
from .chromatin import phase_fractions
from .params import ModelParams

#: Default time step (1 / Gamma_ac). MODEL.md quotes 2e-3; the scheme is stable and reaches the
#: same steady state with larger steps (measured, see docs/model.md).
DEFAULT_DT = 0.05
DEFAULT_T_END = 40.0


@dataclass
class SimulationResult:
    """Steady state of :func:`simulate_chromatin` on an ``n x n`` periodic grid.

    Attributes
    ----------
    phi_w, phi_d : ndarray (n, n) float64
        Nucleoplasm fraction and ``phi_h - phi_e`` at the end time.
    rate_ratio : ndarray (n, n) float64
        The ``Gamma_me / Gamma_ac`` map that was simulated.
    spacing : float
        Grid spacing in model units (``L / n``).
    L : float
        Box side in model units.
    t_end, dt : float
        Simulated time and time step (units of ``1 / Gamma_ac``).
    steps : int
        Time steps taken (fewer than ``t_end / dt`` when ``tol`` stopped the run early).
    max_rate : float
        ``max |d phi / dt|`` over both fields at the last step (convergence report).
    rms_rate : float
        Root-mean-square ``|d phi / dt|`` over both fields at the last step.
    history : list of (t, max_rate)
        Convergence history, sampled every ``report_every`` steps.
    params : ModelParams
    seed : int
    device : str
    elapsed_s : float
        Wall time of the simulation.
    domain : {"periodic", "box", "mask"}
        Periodic box, rectangle with no-flux walls, or a nucleus mask with no-flux walls.
    mask : ndarray (n, n) bool or None
        The closed domain (None for "periodic"; all True for "box").
    conservation : dict
        Closed domains only: ``mean_drift_phi_w`` (change of the mean of the conserved
        ``phi_w``), ``mean_drift_phi_d_minus_reactions`` (change of the mean of ``phi_d`` not
        explained by the reactions), ``wall_flux`` (the mass budget's remainder per wall
        length and time, model units), the lamina affinity and the scheme.
    """

    phi_w: np.ndarray
    phi_d: np.ndarray
    rate_ratio: np.ndarray
    spacing: float
    L: float
    t_end: float
    dt: float
    steps: int
    max_rate: float
    rms_rate: float
    history: list = field(default_factory=list)
    params: ModelParams = field(default_factory=ModelParams)
    seed: int | None = 0
    device: str = "cpu"
    elapsed_s: float = 0.0
    domain: str = "periodic"
    mask: np.ndarray | None = None
    conservation: dict = field(default_factory=dict)

    @property
    def phi_h(self) -> np.ndarray:
        return (1.0 - self.phi_w + self.phi_d) / 2

    @property
    def phi_e(self) -> np.ndarray:
        return (1.0 - self.phi_w - self.phi_d) / 2

    def domain_fraction(self, threshold: float | None = None) -> float:
        """Area fraction of heterochromatin domains (``phi_h`` above ``threshold``).

        The default threshold is the midpoint of the ``phi_h`` range, the usual
        interface definition of a phase-separated field. Closed domains count mask cells only.
        """
        phi_h = self.phi_h if self.mask is None else self.phi_h[self.mask]
        if threshold is None:
            threshold = 0.5 * (float(phi_h.min()) + float(phi_h.max()))
        return float(np.mean(phi_h > threshold))

    def report(self) -> dict:
        """Scalar summary (ranges, domain fraction, convergence), JSON-able."""
        inside = np.ones(self.phi_w.shape, bool) if self.mask is None else self.mask
        inside_d, inside_w = self.phi_d[inside], self.phi_w[inside]
        return {
            "n": int(self.phi_w.shape[0]),
            "L": self.L,
            "spacing": self.spacing,
            "t_end": self.t_end,
            "dt": self.dt,
            "steps": self.steps,
            "max_rate": self.max_rate,
            "rms_rate": self.rms_rate,
            "phi_d_range": [float(inside_d.min()), float(inside_d.max())],
            "phi_w_range": [float(inside_w.min()), float(inside_w.max())],
            "domain_fraction": self.domain_fraction(),
            "rate_ratio_mean": float(np.mean(self.rate_ratio)),
            "seed": self.seed,
            "device": self.device,
            "elapsed_s": self.elapsed_s,
            "domain": self.domain,
            **({"conservation": dict(self.conservation)} if self.conservation else {}),
        }


def simulate_chromatin(
    rate_ratio_map,
    L: float = 10.0,
    n: int = 256,
    dt: float = DEFAULT_DT,
    t_end: float = DEFAULT_T_END,
    seed: int | None = 0,
    device: str = "cpu",
    params: ModelParams | None = None,
    stabilisation: float = 2.0,
    init_noise_std: float = 0.1,
    init_noise_length: float = 0.1,
    tol: float | None = None,
    report_every: int = 100,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
    domain="periodic",
) -> SimulationResult:
    """Evolve the chromatin model to its steady state for a given rate-ratio map.

    Parameters
    ----------
    rate_ratio_map : float or ndarray (n, n)
        ``lambda = Gamma_me / Gamma_ac`` (constant, or one value per grid point).
    L : float
        Periodic box side (model units).
    n : int
        Grid points per side (spacing ``L / n``).
    dt, t_end : float
        Time step and end time (units of ``1 / Gamma_ac``).
    seed : int or None
        Seeds the initial perturbation.
    device : {"cpu", "cuda", "mps"}
        Torch device (float64 throughout; "mps" has no float64 and is refused).
    params : ModelParams
        ``phi_max``, ``interface_length`` (``l``), ``gamma_ac``, ``mean_nucleoplasm``.
    stabilisation : float
        Linear stabilisation ``S`` (MODEL.md: 2).
    init_noise_std, init_noise_length : float
        Std and Gaussian-filter length (model units) of the correlated initial perturbation
        added to ``phi_d`` and ``phi_w`` (white noise nucleates a single droplet when
        ``lambda < 1``).
    tol : float or None
        Stop early once ``max |d phi / dt|`` falls below ``tol`` (checked every
        ``report_every`` steps). None runs to ``t_end``.
    report_every : int
        Steps between convergence checks.
    initial : (phi_w, phi_d) or None
        Start from these fields instead of the perturbed homogeneous state.
    domain : "periodic", "box" or ndarray (n, n) bool
        "periodic": the periodic ``L x L`` box (Fourier scheme). "box": the ``L x L`` rectangle
        with no-flux walls. A mask: the nucleus (True cells) with no-flux walls along its
        outline (:mod:`napari_mollifier.physics.domains` makes ellipses and kidney shapes).
        Closed domains use the masked finite-volume scheme of
        :mod:`napari_mollifier.physics.closed` (CPU, scipy sparse LU) and honour
        ``params.lamina_affinity``; the result reports conservation and the wall flux.

    Returns
    -------
    SimulationResult
    """
    import torch

    params = params or ModelParams()
    if device == "mps":
        raise ValueError("simulate_chromatin needs float64; the 'mps' device has none: use cpu")
    if not (dt > 0 and t_end > 0 and L > 0 and n >= 8):
        raise ValueError(
            f"expected dt > 0, t_end > 0, L > 0, n >= 8; found dt={dt}, t_end={t_end}, L={L}, n={n}"
        )
    lam = np.asarray(rate_ratio_map, dtype=np.float64)
    if lam.ndim == 0:
        lam = np.full((n, n), float(lam))
    if lam.shape != (n, n):
        raise ValueError(f"rate_ratio_map must be a scalar or shape {(n, n)}, found {lam.shape}")
    if not np.all(np.isfinite(lam)) or lam.min() <= 0:
        raise ValueError("rate_ratio_map must be finite and > 0 everywhere")
    if not (isinstance(domain, str) and domain == "periodic"):
        return _simulate_closed_domain(
            lam,
            domain,
            L,
            n,
            dt,
            t_end,
            seed,
            params,
            stabilisation,
            (init_noise_std, init_noise_length),
            tol,
            report_every,
            initial,
        )
    if params.lamina_affinity != 0:
        raise ValueError(
            "params.lamina_affinity is a wall condition: a periodic box has no wall; use "
            "domain='box' or a nucleus mask"
        )

    t0 = time.perf_counter()
    dev = torch.device(device)
    f64 = torch.float64
    spacing = L / n
    phi_max, l2 = params.phi_max, params.interface_length**2
    gamma_ac = params.gamma_ac
    gamma_me = torch.as_tensor(lam * gamma_ac, dtype=f64, device=dev)
    c = float(lam.mean() * gamma_ac + gamma_ac)

    ky = 2 * math.pi * torch.fft.fftfreq(n, d=spacing, dtype=f64, device=dev)
    kx = 2 * math.pi * torch.fft.rfftfreq(n, d=spacing, dtype=f64, device=dev)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    k4 = k2 * k2
    s = stabilisation
    denom_d = 1 + dt * (l2 * k4 + s * k2 + c)
    denom_w = 1 + dt * (l2 * k4 + s * k2)

    if initial is not None:
        phi_w = torch.as_tensor(np.asarray(initial[0], dtype=np.float64), device=dev).clone()
        phi_d = torch.as_tensor(np.asarray(initial[1], dtype=np.float64), device=dev).clone()
        if phi_w.shape != (n, n) or phi_d.shape != (n, n):
            raise ValueError(f"initial fields must both have shape {(n, n)}")
    else:
        lam_bar = float(lam.mean())
        phi_w0 = params.mean_nucleoplasm
        chromatin = 1.0 - phi_w0
        phi_h0 = chromatin * lam_bar / (lam_bar + 1)  # homogeneous reaction balance
        phi_d0 = 2 * phi_h0 - chromatin
        rng = np.random.default_rng(seed)
        noise = _correlated_noise(rng, n, spacing, init_noise_length, init_noise_std, 2)
        phi_d = torch.as_tensor(phi_d0 + noise[0], dtype=f64, device=dev)
        phi_w = torch.as_tensor(phi_w0 + noise[1], dtype=f64, device=dev)

    steps_total = int(round(t_end / dt))
    history: list[tuple[float, float]] = []
    max_rate = rms_rate = float("nan")
    step = 0
    fft, ifft = torch.fft.rfft2, torch.fft.irfft2
    # state kept in Fourier space: two batched FFTs per step (fields out, nonlinear terms in)
    spec = fft(torch.stack([phi_d, phi_w]))
    one_hat = torch.zeros_like(spec[0])
    one_hat[0, 0] = n * n  # F(1) with torch's unnormalised forward transform
    real = torch.stack([phi_d, phi_w])
    for step in range(1, steps_total + 1):
        phi_d, phi_w = real[0], real[1]
        phi_h, phi_e = phase_fractions(phi_w, phi_d)
        g = g_bulk(phi_h, phi_max)
        nonlin = fft(torch.stack([g, gamma_me * phi_e]))
        fd, fw = spec[0], spec[1]
        fe = (one_hat - fw - fd) / 2
        fh = (one_hat - fw + fd) / 2
        reaction = 2 * nonlin[1] - 2 * gamma_ac * fh + c * fd
        new_fd = (fd + dt * (-k2 * (nonlin[0] - fe) + s * k2 * fd + reaction)) / denom_d
        new_fw = (fw + dt * (-k2 * (-nonlin[0] - fe) + s * k2 * fw)) / denom_w
        spec = torch.stack([new_fd, new_fw])
        new_real = ifft(spec, s=(n, n))
        check = step % report_every == 0 or step == steps_total
        if check:
            rate = (new_real - real).abs() / dt
            max_rate = float(rate.max())
            rms_rate = float(torch.sqrt(torch.mean(rate * rate)))
            history.append((step * dt, max_rate))
        real = new_real
        if check and not math.isfinite(max_rate):
            raise FloatingPointError(
                f"simulation diverged at t = {step * dt:.3g} (dt = {dt}); use a smaller dt"
            )
        if check and tol is not None and max_rate < tol:
            break
    phi_d, phi_w = real[0], real[1]
    return SimulationResult(
        phi_w=phi_w.cpu().numpy(),
        phi_d=phi_d.cpu().numpy(),
        rate_ratio=lam,
        spacing=spacing,
        L=float(L),
        t_end=step * dt,
        dt=float(dt),
        steps=step,
        max_rate=max_rate,
        rms_rate=rms_rate,
        history=history,
        params=params,
        seed=seed,
        device=str(dev),
        elapsed_s=time.perf_counter() - t0,
    )


def _simulate_closed_domain(
    lam,
    domain,
    L,
    n,
    dt,
    t_end,
    seed,
    params,
    stabilisation,
    noise_args,
    tol,
    report_every,
    initial,
):
    """The closed-domain branch of :func:`simulate_chromatin` (rectangle or nucleus mask)."""
    from .closed import simulate_closed

    if isinstance(domain, str):
        if domain != "box":
            raise ValueError(
                f"domain: expected 'periodic', 'box' or an (n, n) mask, found {domain!r}"
            )
        mask, kind = np.ones((n, n), dtype=bool), "box"
    else:
        mask, kind = np.asarray(domain, dtype=bool), "mask"
    if initial is not None:
        initial = tuple(np.asarray(a, dtype=np.float64) for a in initial)
        if any(a.shape != (n, n) for a in initial):
            raise ValueError(f"initial fields must both have shape {(n, n)}")
    spacing = L / n
    rng = np.random.default_rng(seed)
    noise = _correlated_noise(rng, n, spacing, noise_args[1], noise_args[0], 2)
    out = simulate_closed(
        lam,
        mask,
        spacing,
        dt,
        t_end,
        seed=seed,
        params=params,
        stabilisation=stabilisation,
        noise=noise,
        tol=tol,
        report_every=report_every,
        initial=initial,
    )
    return SimulationResult(
        rate_ratio=lam,
        spacing=spacing,
        L=float(L),
        dt=float(dt),
        params=params,
        seed=seed,
        device="cpu",
        domain=kind,
        **out,
    )


def _correlated_noise(rng, n, spacing, length, std, count):
    """``count`` periodic Gaussian-filtered noise fields (filter sigma ``length``), std ``std``."""
    ky = 2 * np.pi * np.fft.fftfreq(n, d=spacing)
    kx = 2 * np.pi * np.fft.rfftfreq(n, d=spacing)
    transfer = np.exp(-0.5 * (ky[:, None] ** 2 + kx[None, :] ** 2) * length**2)
    out = []
    for _ in range(count):
        field_ = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, n))) * transfer, s=(n, n))
        field_ -= field_.mean()
        out.append(std * field_ / field_.std())
    return np.stack(out)


def downsample(field_: np.ndarray, factor: int) -> np.ndarray:
    """Block-average an (H, W) field by an integer ``factor`` (a camera pixel integrates).

    H and W must be multiples of ``factor``. Returns (H / factor, W / factor).
    """
    field_ = np.asarray(field_, dtype=np.float64)
    factor = int(factor)
    h, w = field_.shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"shape {field_.shape} is not divisible by the factor {factor}")
    return field_.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
