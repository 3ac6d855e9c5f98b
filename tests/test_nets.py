"""Backbones: shapes, sizes, seeding, PirateNet / PINNsFormer specifics."""

import pytest

torch = pytest.importorskip("torch")

from napari_mollifier.nets import (  # noqa: E402
    BACKBONE_NAMES,
    PRESETS,
    PirateNet,
    build_backbone,
    count_parameters,
)

torch.set_num_threads(2)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_shapes_and_parameter_counts(name):
    net = build_backbone(name, out_dim=3, seed=0)
    x = torch.randn(17, 2)
    out = net(x)
    assert out.shape == (17, 3)
    assert net.features(x).shape[0] == 17
    assert net.head.out_features == 3
    small = count_parameters(net)
    paper = count_parameters(build_backbone(name, out_dim=3, preset="paper", seed=0))
    assert 5_000 < small < 60_000  # laptop-sized default
    assert paper > 5 * small  # the paper preset is much larger


def test_known_parameter_count_of_the_mlp():
    net = build_backbone("pinn", width=8, depth=2, fourier_features=4, out_dim=3)
    # Fourier B is a buffer: Linear(8->8) + Linear(8->8) + Linear(8->3)
    assert count_parameters(net) == (8 * 8 + 8) * 2 + (8 * 3 + 3)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_same_seed_same_network(name):
    x = torch.randn(9, 2)
    a = build_backbone(name, seed=3)(x)
    b = build_backbone(name, seed=3)(x)
    c = build_backbone(name, seed=4)(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_bad_names_and_sizes_raise_value_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet")
    with pytest.raises(ValueError, match="preset"):
        build_backbone("pinn", preset="huge")
    with pytest.raises(ValueError, match="bad size keyword"):
        build_backbone("pinn", blocks=3)
    with pytest.raises(ValueError, match="even"):
        build_backbone("pirate", width=33)


def test_pirate_starts_as_linear_model_on_embedding_and_lstsq_init_fits():
    net = PirateNet(width=32, blocks=2, out_dim=1)
    x = torch.rand(300, 2) * 4
    # alpha = 0 in every block: features are exactly the Fourier embedding
    assert all(float(b.alpha.detach()) == 0.0 for b in net.blocks)
    assert torch.allclose(net.features(x), net.embedding(x))
    # a target inside the span of the features is fitted by least squares almost exactly
    coef = torch.randn(32, 1)
    target = net.embedding(x) @ coef + 0.5
    rel = net.least_squares_init(x, target.detach(), ridge=1e-10)
    assert rel < 1e-4
    assert torch.allclose(net(x), target, atol=1e-3)
    # the embedding frequencies are trainable; weight factorisation reproduces the weight
    assert net.embedding.freqs.requires_grad
    layer = net.blocks[0].dense1
    assert torch.allclose(layer.weight, torch.exp(layer.log_scale)[:, None] * layer.direction)


def test_pinnsformer_tokens_shift_along_x_only():
    net = build_backbone("pinnsformer", seed=0, token_shift=0.1)
    assert net.shifts.shape == (PRESETS["default"]["pinnsformer"]["tokens"], 2)
    assert torch.all(net.shifts[:, 0] == 0)  # y never shifted
    assert torch.allclose(net.shifts[:, 1], torch.arange(5.0) * 0.1)
    # twice differentiable (the autodiff baseline needs nested gradients through attention)
    x = torch.rand(5, 2, requires_grad=True)
    (g,) = torch.autograd.grad(net(x)[:, 0].sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g[:, 1].sum(), x)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0


def test_tanh_linear_is_the_linear_layer_then_tanh():
    """tanh(x W^T + b) to 2e-7 in float32 over tanh's whole range, the three gradients of the
    plain autograd version, and twice differentiable (pinn-autodiff differentiates through the
    network four times)."""
    import torch

    from napari_mollifier.nets.activations import tanh_linear

    z = torch.linspace(-12, 12, 20001)[:, None]
    one = torch.ones(1, 1)
    assert torch.max(torch.abs(tanh_linear(z, one, torch.zeros(1)) - torch.tanh(z.double()))) < 2e-7
    gen = torch.Generator().manual_seed(0)
    shapes = ((500, 8), (6, 8), (6,))
    x, w, b = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    grad = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    fused = torch.autograd.grad(tanh_linear(x, w, b), (x, w, b), grad)
    plain = torch.nn.functional.linear(x, w, b).tanh()
    for got, want in zip(fused, torch.autograd.grad(plain, (x, w, b), grad)):
        torch.testing.assert_close(got, want)
    small = (x.detach()[:20].requires_grad_(), w, b)
    assert torch.autograd.gradcheck(tanh_linear, small)
    assert torch.autograd.gradgradcheck(tanh_linear, small)
