"""The mollified PINN (``method="pinn"``) and its autodiff twin (``method="pinn-autodiff"``).

Layout: :mod:`.options` (the ``config.pinn`` section), :mod:`.warm_start` (direct estimator,
noise level, reference map), :mod:`.problem` (padded data, coordinates, fields, patches),
:mod:`.losses` (residuals and loss terms), :mod:`.trainer` (a generic trainer with callbacks),
:mod:`.member` (one ensemble member on that trainer), :mod:`.evaluate` (tiled maps),
:mod:`.assemble` (the result) and :mod:`.estimator` (the generator that ties them together).

What is learned
---------------
A backbone (:mod:`napari_mollifier.nets`) maps pixel-centre coordinates (y, x) in model units to
three raw outputs ``o = (o_w, o_d, o_r)``:

- fields: ``phi_w = data_w + s * o_w``, ``phi_d = data_d + s * o_d`` ("correction" mode, the
  default for ``"pinn"``; ``s`` is the estimated noise level of the data) or
  ``phi = mean + std * o`` ("network" mode, forced for ``"pinn-autodiff"`` because a pixel grid
  cannot be differentiated with respect to coordinates);
- rate map through a positive link: ``lambda = lambda_ref * exp(o_r)``, with ``lambda_ref`` the
  direct estimator's map, extended to the whole image and smoothed (warm start: the output
  layer starts at zero, so step 0 is exactly the warm start).

Why a positive-link rate output rather than reading lambda in closed form from the fitted fields:
the closed form ``(eta*phi_h - eta*lap(mu_d)/2) / eta*phi_e`` is the direct estimator again and
inherits its noise; a rate output lets the loss weigh the residual over a whole patch under a
smoothness prior, and uses the exact ``eta * (lambda phi_e)`` instead of approximating it by
``lambda * (eta * phi_e)``.

Where the gain over the direct estimator comes from: **the second steady-state equation**.
At a steady state ``d phi_w / dt = lap(mu_w) = 0``, so ``mu_w`` is constant. That equation has
no lambda in it, but it constrains the fields: noise in the data violates it, and the field
corrections that remove this violation remove, to first order, the same noise components that the
rate equation would otherwise turn into lambda (both equations see the noise through
``lap eta * (g'(phi_h) n_h)`` and ``lap eta * n_e``). The direct estimator (MODEL.md) uses the rate
equation only. This needs an observed ``phi_e`` (two-channel input ``phi_w, phi_d``): a calibrated
single-channel density has ``phi_e`` uniform by assumption, such fields violate ``mu_w = const``,
and letting the corrections vary ``phi_e`` freely did worse than leaving the equation out (r 0.978
against 0.993 on the optical-path validation). ``config.pinn.equations = "auto"`` therefore uses
both equations for two-channel input and the rate equation alone for a density.

Loss, on a random ``patch_size`` patch plus the kernel halo; residuals at the patch pixels whose
whole kernel support lies inside the nucleus mask and the image, data and prior over the mask::

    R_rate = (lap eta)*(g(phi_h) - phi_e) - l^2 (lap lap eta)*phi_d + 2 eta*(lambda phi_e - phi_h)
    R_w    = (lap eta)*(-g(phi_h) - phi_e) - l^2 (lap lap eta)*phi_w
    loss = w_res   * mean((R_rate / (2 <phi_e>))^2) / r0        r0: the same at the warm start
         + w_res_w * mean((R_w / (2 <phi_e>))^2) / r0_w
         + w_data  * mean((phi - data)^2 / sigma^2) / 2          sigma: noise level of the data
         + w_smooth * L^2 * mean(|grad log lambda|^2) / 2        L: prior length (model units)

In "pinn-autodiff" the residuals' strong forms are computed at every patch pixel by nested
autograd and then mollified by eta (``eta * R_strong`` equals the weak form for smooth fields),
so both methods minimise the same loss.

Scaling: training touches one patch (plus halo) per step, so memory does not depend on the image
size; maps are evaluated in tiles. Uncertainty: ``ensemble_size`` members (seeds
``seed + 1000 k``, own patch draws) split the step budget; the ratio is their mean and the
uncertainty ``UNCERTAINTY_SCALE`` times their standard deviation (calibrated on simulated data).
"""

from .estimator import UNCERTAINTY_SCALE, iter_pinn
from .options import PinnOptions

__all__ = ["PinnOptions", "UNCERTAINTY_SCALE", "iter_pinn"]
