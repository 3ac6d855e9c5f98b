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


def test_fast_tanh_is_tanh_with_its_derivatives():
    """The sigmoid form of tanh: values to 2e-7 in float32, first and second derivatives by
    nested autograd as for torch.tanh (pinn-autodiff differentiates through it four times)."""
    import torch

    from napari_mollifier.nets.activations import fast_tanh

    x32 = torch.linspace(-12, 12, 20001)
    assert torch.max(torch.abs(fast_tanh(x32) - torch.tanh(x32.double()))) < 2e-7
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast_tanh, (x,))
    assert torch.autograd.gradgradcheck(fast_tanh, (x,))
    (d1,) = torch.autograd.grad(fast_tanh(x).sum(), x, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x)
    t = torch.tanh(x.detach())
    torch.testing.assert_close(d1.detach(), 1 - t**2)
    torch.testing.assert_close(d2, -2 * t * (1 - t**2))


def test_tanh_linear_is_the_linear_layer_then_tanh():
    """Bit for bit what F.linear then fast_tanh give (values and all three gradients), to 2e-7
    of torch.tanh, and twice differentiable (pinn-autodiff)."""
    import torch

    from napari_mollifier.nets.activations import fast_tanh, tanh_linear

    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=gen, requires_grad=True) for s in ((500, 8), (6, 8), (6,)))
    grad = torch.randn(500, 6, generator=gen)
    fused = tanh_linear(x, w, b)
    plain = fast_tanh(torch.nn.functional.linear(x, w, b))
    assert torch.equal(fused, plain)
    ref = torch.tanh(torch.nn.functional.linear(x, w, b).double())
    assert torch.max(torch.abs(fused - ref)) < 2e-7
    for a, c in zip(
        torch.autograd.grad(fused, (x, w, b), grad), torch.autograd.grad(plain, (x, w, b), grad)
    ):
        assert torch.equal(a, c)
    args = tuple(
        t.detach().double()[:20].requires_grad_()
        if t.dim() == 2 and t.shape[0] == 500
        else t.detach().double().requires_grad_()
        for t in (x, w, b)
    )
    assert torch.autograd.gradcheck(tanh_linear, args)
    assert torch.autograd.gradgradcheck(tanh_linear, args)
