"""Tests of pathgeo.training.models, the model registry: the papers' architectures, the embedded default's models and the
synthetic objectives' parameters.

Parameter counts are checked three ways: against literal integers (public figures where they exist: torchvision's
resnet18/50/152 and mobilenet_v2, the standard CIFAR ResNet-18/34 and VGG-BN figures), against closed-form counts
written here from the architectures' descriptions (independent of the module code), and, where torchvision has the
same network, against torchvision's own construction. Counting runs on the meta device (no memory, no init);
the forward/backward smoke tests build real CPU float32 models.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pathgeo.plugins import PluginError
from pathgeo.training import data, models


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_count(name: str, num_classes: int, width: float = 1.0, **options) -> int:
    with torch.device("meta"):
        return count(models.build(name, num_classes=num_classes, width=width, **options))


# ----------------------------------------------------------------------------------------------------------------
# Closed-form parameter counts
# ----------------------------------------------------------------------------------------------------------------


def conv(cin: int, cout: int, k: int, bias: bool) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def resnet_formula(kind: str, blocks: list[int], width: float, num_classes: int, cifar: bool = False) -> int:
    """torchvision's ResNet topology with stem and every stage's planes scaled by width (expansion 1 or 4)."""
    expansion = 1 if kind == "basic" else 4
    stem = int(64 * width)
    total = conv(3, stem, 3 if cifar else 7, bias=False) + bn(stem)
    inplanes = stem
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        planes = int(planes * width)
        out = planes * expansion
        for b in range(n):
            stride = 2 if (b == 0 and stage > 0) else 1
            if kind == "basic":
                total += conv(inplanes, planes, 3, False) + bn(planes) + conv(planes, planes, 3, False) + bn(planes)
            else:
                total += (
                    conv(inplanes, planes, 1, False)
                    + bn(planes)
                    + conv(planes, planes, 3, False)
                    + bn(planes)
                    + conv(planes, out, 1, False)
                    + bn(out)
                )
            if b == 0 and (stride != 1 or inplanes != out):
                total += conv(inplanes, out, 1, False) + bn(out)
            inplanes = out
    return total + linear(inplanes, num_classes)


def vgg_formula(convs: list[int], num_classes: int) -> int:
    total, cin = 0, 3
    for cout in convs:
        total += conv(cin, cout, 3, bias=True) + bn(cout)
        cin = cout
    return total + linear(512, num_classes)


def cnn_formula(num_classes: int, channels: int = 32) -> int:
    c = [3, channels, 2 * channels, 4 * channels]
    return sum(conv(c[i], c[i + 1], 3, bias=True) for i in range(3)) + linear(c[3] * 4 * 4, num_classes)


def transformer_formula(vocab: int, d: int = 128, hidden: int = 128, layers: int = 2) -> int:
    per_layer = (3 * d * d + 3 * d) + linear(d, d) + linear(d, hidden) + linear(hidden, d) + 2 * (2 * d)
    return vocab * d + layers * per_layer + linear(d, vocab)


def segnet_formula(num_classes: int) -> int:
    # (in, out) of every conv, in order: encoder 1_1..5_3, decoder 5_3_D..1_1_D; all with bias, BN except the last.
    encoder = [
        (3, 64),
        (64, 64),
        (64, 128),
        (128, 128),
        (128, 256),
        (256, 256),
        (256, 256),
        (256, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
    ]
    decoder = [
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 256),
        (256, 256),
        (256, 256),
        (256, 128),
        (128, 128),
        (128, 64),
        (64, 64),
    ]
    total = sum(conv(i, o, 3, True) + bn(o) for i, o in encoder + decoder)
    return total + conv(64, num_classes, 3, True)


def unet_formula(num_classes: int, base: int = 64) -> int:
    def double(i, o):
        return conv(i, o, 3, False) + bn(o) + conv(o, o, 3, False) + bn(o)

    w = [base * 2**i for i in range(5)]
    total = double(3, w[0]) + sum(double(w[i], w[i + 1]) for i in range(4))
    for i in range(4):  # up path: ConvTranspose2d(2c -> c, 2x2, bias) then DoubleConv(2c -> c)
        total += (2 * w[i]) * w[i] * 4 + w[i] + double(2 * w[i], w[i])
    return total + conv(w[0], num_classes, 1, True)


MEDIUM_MLP = (3072 * 4096 + 4096) + 3 * (4096 * 4096 + 4096) + (4096 * 10 + 10)
VGG11 = [64, 128, 256, 256, 512, 512, 512, 512]
VGG16 = [64, 64, 128, 128, 256, 256, 256] + [512] * 6
VGG19 = [64, 64, 128, 128, 256, 256, 256, 256] + [512] * 8

# (name, num_classes, width, options) -> (literal, closed form)
COUNTS = {
    ("cifar_resnet18", 10, 1.0): (11_173_962, resnet_formula("basic", [2, 2, 2, 2], 1, 10, cifar=True)),
    ("cifar_resnet18", 10, 2.0): (44_662_922, resnet_formula("basic", [2, 2, 2, 2], 2, 10, cifar=True)),
    ("cifar_resnet34", 10, 1.0): (21_282_122, resnet_formula("basic", [3, 4, 6, 3], 1, 10, cifar=True)),
    ("cifar_resnet34", 10, 2.0): (85_080_714, resnet_formula("basic", [3, 4, 6, 3], 2, 10, cifar=True)),
    ("cifar_cnn", 10, 1.0): (113_738, cnn_formula(10)),
    ("medium_mlp", 10, 1.0): (62_971_914, MEDIUM_MLP),
    ("cifar_vgg11", 10, 1.0): (9_231_114, vgg_formula(VGG11, 10)),
    ("cifar_vgg16", 10, 1.0): (14_728_266, vgg_formula(VGG16, 10)),
    ("cifar_vgg19", 10, 1.0): (20_040_522, vgg_formula(VGG19, 10)),
    ("imagenet_resnet18", 1000, 1.0): (11_689_512, resnet_formula("basic", [2, 2, 2, 2], 1, 1000)),
    ("imagenet_resnet18", 1000, 2.0): (45_693_032, resnet_formula("basic", [2, 2, 2, 2], 2, 1000)),
    ("imagenet_resnet50", 1000, 1.0): (25_557_032, resnet_formula("bottleneck", [3, 4, 6, 3], 1, 1000)),
    ("imagenet_resnet50", 1000, 2.0): (98_004_072, resnet_formula("bottleneck", [3, 4, 6, 3], 2, 1000)),
    ("imagenet_resnet152", 1000, 0.5): (15_601_160, resnet_formula("bottleneck", [3, 8, 36, 3], 0.5, 1000)),
    ("imagenet_resnet152", 1000, 1.0): (60_192_808, resnet_formula("bottleneck", [3, 8, 36, 3], 1, 1000)),
    ("transformer_lm", 33278, 1.0): (8_751_614, transformer_formula(33278)),
    ("segnet", 6, 1.0): (29_446_470, segnet_formula(6)),
    ("unet", 6, 1.0): (31_037_958, unet_formula(6)),
}


@pytest.mark.parametrize("key", sorted(COUNTS), ids=lambda k: f"{k[0]}-w{k[2]}")
def test_parameter_count(key):
    literal, formula = COUNTS[key]
    assert literal == formula
    assert meta_count(*key) == literal


def mlp_formula(width: int, classes: int = 10, hidden_layers: int = 3) -> int:
    return linear(40, width) + (hidden_layers - 1) * linear(width, width) + linear(width, classes)


def resnet1d_formula(width: int, classes: int = 10) -> int:
    w = width
    stem = 5 * w + bn(w)
    stage1 = 2 * (3 * w * w + bn(w))
    stage2 = 3 * w * 2 * w + bn(2 * w) + 3 * 2 * w * 2 * w + bn(2 * w) + w * 2 * w + bn(2 * w)  # with the 1x1 shortcut
    return stem + stage1 + stage2 + linear(2 * w, classes)


def test_every_registered_parameter_count_is_right():
    """Each model's counts as its registry entry states them, against a real (meta) construction, and against
    the literal of COUNTS where there is one."""
    for entry in models.models().values():
        assert entry.parameter_counts, f"{entry.name} states no parameter count"
        for expected in entry.parameter_counts:
            assert meta_count(entry.name, expected.num_classes, expected.width, **expected.data) == expected.parameters
    stated = {
        (e.name, c.num_classes, c.width): c.parameters for e in models.models().values() for c in e.parameter_counts
    }
    for key, (literal, _) in COUNTS.items():
        assert stated[key] == literal


def test_default_and_objective_parameter_counts():
    assert meta_count("mlp", 10, 64) == mlp_formula(64) == 11_594
    assert meta_count("mlp", 10, 16, hidden_layers=2) == mlp_formula(16, hidden_layers=2)
    assert meta_count("resnet1d", 10, 32) == resnet1d_formula(32) == 28_010
    assert meta_count("linear", 0, dim=7) == 7
    assert meta_count("sinusoid", 0, dim=7, init_scale=3.0) == meta_count("walk", 0, dim=7) == 7


def test_medium_mlp_formula_written_out():
    assert MEDIUM_MLP == 62_971_914
    # the authors' variant (3 hidden layers), offered as an option
    assert meta_count("medium_mlp", 10, hidden_layers=3) == 46_190_602 == MEDIUM_MLP - (4096 * 4096 + 4096)


def test_option_variants():
    assert meta_count("unet", 6, base=32) == unet_formula(6, base=32) == 7_763_206
    assert meta_count("transformer_lm", 100, heads=4, layers=12) == transformer_formula(100, layers=12)
    assert meta_count("cifar_vgg11", 10, batch_norm=False) == vgg_formula(VGG11, 10) - 2 * sum(VGG11)
    assert meta_count("cifar_vgg16", 10, batch_norm=False) == vgg_formula(VGG16, 10) - 2 * sum(VGG16)
    assert meta_count("cifar_cnn", 10, channels=16) == cnn_formula(10, channels=16) == 33_834
    assert meta_count("cifar_cnn", 10, 2.0) == meta_count("cifar_cnn", 10, channels=64) == cnn_formula(10, 64)


@pytest.mark.parametrize("depth,width", [(18, 1.0), (50, 1.0), (152, 1.0)])
def test_imagenet_resnet_width1_is_torchvision(depth, width):
    with torch.device("meta"):
        ours = models.build(f"imagenet_resnet{depth}", num_classes=1000, width=width)
        theirs = getattr(torchvision.models, f"resnet{depth}")()
    assert count(ours) == count(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_imagenet_resnet18_matches_torchvision_function():
    """Same state_dict layout and the same function: load torchvision's weights, compare outputs."""
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=7).eval()
    ours = models.build("imagenet_resnet18", num_classes=7).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_width_scales_every_stage():
    base = meta_count("cifar_resnet18", 10, 1.0)
    wide = meta_count("cifar_resnet18", 10, 2.0)
    assert wide == 44_662_922
    assert 3.95 < wide / base < 4.0  # ~4x: convs scale by 4, BN and the head's bias do not
    with torch.device("meta"):
        w2 = models.build("imagenet_resnet18", num_classes=1000, width=2.0)
        half = models.build("imagenet_resnet152", num_classes=1000, width=0.5)
    assert w2.conv1.out_channels == 128 and w2.layer4[-1].conv2.out_channels == 1024 and w2.fc.in_features == 1024
    # bottleneck expansion stays 4: 0.5 * 512 planes -> 1024 output channels
    assert half.conv1.out_channels == 32 and half.layer4[-1].conv3.out_channels == 1024
    assert half.layer1[0].conv2.in_channels == 32


def test_cifar_resnet34_is_resnet18_with_more_blocks():
    with torch.device("meta"):
        r18 = models.build("cifar_resnet18", num_classes=10)
        r34 = models.build("cifar_resnet34", num_classes=10, width=2.0)
    assert type(r34) is type(r18)
    assert [len(getattr(r34, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert r34.conv1.kernel_size == (3, 3) and r34.conv1.stride == (1, 1) and isinstance(r34.maxpool, nn.Identity)
    assert r34.conv1.out_channels == 128 and r34.layer4[-1].conv2.out_channels == 1024 and r34.fc.in_features == 1024
    assert 3.99 < meta_count("cifar_resnet34", 10, 2.0) / meta_count("cifar_resnet34", 10, 1.0) < 4.0


def test_not_torchvision_wide_resnet():
    """torchvision's wide_resnet50_2 widens only the bottleneck's inner 3x3; ours widens everything."""
    with torch.device("meta"):
        wide = torchvision.models.wide_resnet50_2()
    assert count(wide) == 68_883_240 != meta_count("imagenet_resnet50", 1000, 2.0)


def test_mobilenet_v2_counts_and_strides():
    with torch.device("meta"):
        tv10 = count(torchvision.models.mobilenet_v2(num_classes=10))
        tv1000 = count(torchvision.models.mobilenet_v2())
    assert meta_count("imagenet_mobilenet_v2", 1000) == tv1000 == 3_504_872
    assert meta_count("cifar_mobilenet_v2", 10) == tv10 == 2_236_682

    cifar = models.build("cifar_mobilenet_v2", num_classes=10).eval()
    imagenet = models.build("imagenet_mobilenet_v2", num_classes=10).eval()
    with torch.no_grad():
        assert cifar.features(torch.zeros(1, 3, 32, 32)).shape == (1, 1280, 4, 4)  # 32 / 8
        assert imagenet.features(torch.zeros(1, 3, 32, 32)).shape == (1, 1280, 1, 1)  # 32 / 32
    assert cifar.features[0][0].stride == (1, 1)
    assert cifar.features[2].conv[1][0].stride == (1, 1)  # first block of the (t=6, c=24) stage, depthwise conv
    assert imagenet.features[2].conv[1][0].stride == (2, 2)


def test_vgg_uses_batch_norm_and_single_head():
    model = models.build("cifar_vgg11", num_classes=10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 512
    vgg16 = models.build("cifar_vgg16", num_classes=10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg16.modules()) == 13
    assert [m.out_channels for m in vgg16.modules() if isinstance(m, nn.Conv2d)] == VGG16
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg16.modules()) == 5
    assert isinstance(vgg16.classifier, nn.Linear) and vgg16.classifier.in_features == 512


def test_cifar_cnn_layout():
    model = models.build("cifar_cnn", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
        (64, 128, (3, 3), (1, 1)),
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    assert [m.in_features for m in model.modules() if isinstance(m, nn.Linear)] == [128 * 4 * 4]
    with torch.no_grad():
        assert model.features(torch.zeros(1, 3, 32, 32)).shape == (1, 128, 4, 4)


# ----------------------------------------------------------------------------------------------------------------
# Medium-MLP: logits, not probabilities
# ----------------------------------------------------------------------------------------------------------------


def test_medium_mlp_outputs_logits_not_probabilities():
    torch.manual_seed(0)
    model = models.build("medium_mlp", num_classes=10, hidden=64)  # the structure at a cheap size
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert (out < 0).any()  # not softmax probabilities
    assert not torch.allclose(out.sum(dim=1), torch.ones(4), atol=1e-3)  # rows are not normalized
    assert not torch.allclose(torch.logsumexp(out, dim=1), torch.zeros(4), atol=1e-3)  # nor log-probabilities
    assert sum(isinstance(m, nn.Linear) for m in models.build("medium_mlp", num_classes=10, hidden=8).modules()) == 5


# ----------------------------------------------------------------------------------------------------------------
# Transformer: batch-first layout and causal mask
# ----------------------------------------------------------------------------------------------------------------

VOCAB = 50


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return models.build("transformer_lm", num_classes=VOCAB)


@pytest.mark.parametrize("train", [False, True])
def test_transformer_causal_mask(lm, train):
    lm.train(train)
    torch.manual_seed(1)
    x = torch.randint(0, VOCAB, (3, 9))
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % VOCAB  # change a later token
    with torch.no_grad():
        ox, oy = lm(x), lm(y)
    assert ox.shape == (3, 9, VOCAB)
    torch.testing.assert_close(ox[:, :6], oy[:, :6], rtol=1e-5, atol=1e-5)  # earlier positions untouched
    assert not torch.allclose(ox[:, 6:], oy[:, 6:], atol=1e-4)  # the changed position and later ones move


@pytest.mark.parametrize("train", [False, True])
def test_transformer_batch_axis_is_batch(lm, train):
    lm.train(train)
    torch.manual_seed(2)
    x = torch.randint(0, VOCAB, (4, 7))  # batch 4 != time 7, so a transposed layout cannot go unnoticed
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = lm(x)
        torch.testing.assert_close(lm(x[perm]), out[perm], rtol=1e-5, atol=1e-5)
        # a sample's logits do not depend on the other samples in the batch
        other = x.clone()
        other[1:] = torch.randint(0, VOCAB, (3, 7))
        torch.testing.assert_close(lm(other)[0], out[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lm(x[:1])[0], out[0], rtol=1e-5, atol=1e-5)


def test_transformer_is_batch_first_and_positional(lm):
    lm.eval()
    assert lm.transformer_encoder.layers[0].self_attn.batch_first
    x = torch.full((1, 5), 3)  # the same token everywhere: only the positional encoding tells positions apart
    with torch.no_grad():
        out = lm(x)[0]
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    with pytest.raises(ValueError):
        lm(torch.zeros(5, dtype=torch.long))


def test_transformer_defaults_and_options():
    model = models.build("transformer_lm", num_classes=VOCAB, heads=4, layers=3, dropout=0.1)
    layers = model.transformer_encoder.layers
    assert len(layers) == 3 and layers[0].self_attn.num_heads == 4 and layers[0].dropout.p == 0.1
    default = models.build("transformer_lm", num_classes=VOCAB)
    assert len(default.transformer_encoder.layers) == 2
    assert default.transformer_encoder.layers[0].self_attn.num_heads == 2
    assert default.encoder.embedding_dim == 128 and default.transformer_encoder.layers[0].linear1.out_features == 128


@pytest.fixture
def deterministic_algorithms():
    """`deterministic_algorithms(on)` sets torch's flag as pathgeo.training.devices does; restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    yield lambda on: torch.use_deterministic_algorithms(on, warn_only=True)
    torch.use_deterministic_algorithms(before, warn_only=True)


class AttentionOps(TorchDispatchMode):
    """The aten operations of attention dispatched while active: a fused kernel (flash, memory-efficient,
    cuDNN, or the CPU's flash) or the math backend's softmax (the loss's log-softmax aside)."""

    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "attention" in name or name.startswith(("aten._safe_softmax", "aten._softmax")):
            self.ops.add(name)
        return func(*args, **(kwargs or {}))


def sdpa_backends() -> dict[str, bool]:
    return {
        "flash": torch.backends.cuda.flash_sdp_enabled(),
        "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
        "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
        "math": torch.backends.cuda.math_sdp_enabled(),
    }


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_runs_attend_by_the_math_backend(deterministic_algorithms, deterministic):
    """On CUDA the flash and memory-efficient backwards of scaled-dot-product attention are not deterministic:
    a deterministic run allows only the math backend while its attention runs forward, and so its backward is
    the math backend's too (seen here on the CPU, whose fused kernel is the CPU's flash attention)."""
    deterministic_algorithms(deterministic)
    torch.manual_seed(0)
    model = models.build("transformer_lm", num_classes=VOCAB).train()
    allowed = []
    for layer in model.transformer_encoder.layers:
        layer.self_attn.register_forward_pre_hook(lambda *_: allowed.append(sdpa_backends()))
    tokens = torch.randint(0, VOCAB, (3, 9))
    with AttentionOps() as attention:
        nn.functional.cross_entropy(model(tokens).reshape(-1, VOCAB), tokens.reshape(-1)).backward()
    assert len(allowed) == 2
    if deterministic:
        assert all(a == {"flash": False, "mem_efficient": False, "cudnn": False, "math": True} for a in allowed)
        assert attention.ops == {"aten._safe_softmax.default", "aten._softmax_backward_data.default"}
    else:
        assert all(all(a.values()) for a in allowed)
        assert "aten._scaled_dot_product_flash_attention_for_cpu_backward.default" in attention.ops
    assert all(sdpa_backends().values())  # the choice holds only inside the model's forward


@pytest.mark.parametrize("train", [True, False])
def test_the_math_backend_computes_the_same_function(deterministic_algorithms, train):
    """The same logits and gradients as the fused kernel that nn.TransformerEncoder takes outside deterministic
    runs, to float32 rounding; parameter names are unchanged (checkpoints and state_dict keys)."""
    torch.manual_seed(0)
    model = models.build("transformer_lm", num_classes=VOCAB).train(train)
    tokens = torch.randint(0, VOCAB, (4, 12))
    results = {}
    for deterministic in (False, True):
        deterministic_algorithms(deterministic)
        model.zero_grad()
        logits = model(tokens)
        nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens.roll(-1, 1).reshape(-1)).backward()
        results[deterministic] = logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}
    (fused, fused_grads), (math, math_grads) = results[False], results[True]
    torch.testing.assert_close(math, fused, rtol=1e-5, atol=1e-5)
    assert math_grads.keys() == fused_grads.keys()
    for name in fused_grads:
        torch.testing.assert_close(math_grads[name], fused_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert not all(torch.equal(math_grads[k], fused_grads[k]) for k in fused_grads), "the two paths were one"


# ----------------------------------------------------------------------------------------------------------------
# Smoke: forward + backward on tiny input, CPU float32
# ----------------------------------------------------------------------------------------------------------------

SMOKE = [
    ("cifar_resnet18", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_resnet18", 10, 2.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_resnet34", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_cnn", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("medium_mlp", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_vgg11", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_vgg16", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_vgg19", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("cifar_mobilenet_v2", 10, 1.0, (2, 3, 32, 32), (2, 10)),
    ("imagenet_mobilenet_v2", 1000, 1.0, (2, 3, 64, 64), (2, 1000)),
    ("imagenet_resnet18", 1000, 1.0, (2, 3, 64, 64), (2, 1000)),
    ("imagenet_resnet18", 1000, 2.0, (2, 3, 64, 64), (2, 1000)),
    ("imagenet_resnet50", 1000, 1.0, (2, 3, 64, 64), (2, 1000)),
    ("imagenet_resnet152", 1000, 0.5, (2, 3, 64, 64), (2, 1000)),
    ("imagenet_resnet152", 1000, 1.0, (2, 3, 64, 64), (2, 1000)),
    ("segnet", 6, 1.0, (2, 3, 64, 64), (2, 6, 64, 64)),
    ("unet", 6, 1.0, (2, 3, 64, 64), (2, 6, 64, 64)),
]


@pytest.mark.parametrize("name,num_classes,width,shape,out_shape", SMOKE, ids=lambda v: str(v))
def test_forward_backward(name, num_classes, width, shape, out_shape):
    torch.manual_seed(0)
    model = models.build(name, num_classes=num_classes, width=width)
    model.train()
    x = torch.randn(*shape)
    out = model(x)
    assert out.shape == out_shape and out.dtype == torch.float32 and out.device.type == "cpu"
    target = torch.randint(0, num_classes, (shape[0],) + tuple(out_shape[2:]))
    nn.functional.cross_entropy(out, target).backward()
    for pname, p in model.named_parameters():
        assert p.device.type == "cpu" and p.dtype == torch.float32
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_transformer_forward_backward():
    torch.manual_seed(0)
    model = models.build("transformer_lm", num_classes=VOCAB, dropout=0.2)
    tokens = torch.randint(0, VOCAB, (2, 8))
    out = model(tokens[:, :-1])
    assert out.shape == (2, 7, VOCAB) and out.dtype == torch.float32
    nn.functional.cross_entropy(out.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ["segnet", "unet"])
def test_segmentation_non_square(name):
    model = models.build(name, num_classes=6).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 96)).shape == (1, 6, 32, 96)


# ----------------------------------------------------------------------------------------------------------------
# Registry and determinism
# ----------------------------------------------------------------------------------------------------------------


def test_registry():
    # Every model trains on some dataset kind, and every kind trains some model (tensors: only plug-ins do; an
    # image folder feeds the CIFAR-10 or the ImageNet models, by its crop).
    provided = {kind.input for kind in data.kinds().values() if isinstance(kind.input, str)}
    assert {entry.input for entry in models.models().values()} == provided - {"tensors"}
    assert {data.kind("image_folder").provides({"crop": c}) for c in (32, 224)} <= provided
    assert models.for_input("mnist1d") == ("mlp", "resnet1d")
    assert set(models.for_input("image32")) >= {"cifar_resnet18", "cifar_cnn", "medium_mlp", "cifar_vgg16"}
    # What a width means: the paper's ResNets take a multiplier, the embedded default's models a size.
    assert {e.name for e in models.models().values() if e.width is models.Width.MULTIPLIER} == {
        "cifar_resnet18",
        "cifar_resnet34",
        "imagenet_resnet18",
        "imagenet_resnet50",
        "imagenet_resnet152",
    }
    assert models.model("mlp").slug(64) == "mlp64" and models.model("cifar_resnet18").slug(2) == "cifar_resnet18x2"
    assert models.model("linear").slug(0) == "linear"
    with pytest.raises(KeyError, match="unknown model 'resnet18'"):
        models.build("resnet18", num_classes=10)
    for name in ("cifar_vgg11", "cifar_vgg16", "cifar_vgg19", "segnet", "transformer_lm"):
        with pytest.raises(ValueError):
            models.build(name, num_classes=10, width=2.0)
    with pytest.raises(ValueError):
        models.build("imagenet_resnet18", num_classes=10, width=0.3)  # 64 * 0.3 is not a whole channel count


def test_build_model_is_seeded_and_reads_its_dataset_parameters():
    params = {"dim": 6, "init_scale": 3.0, "steps_per_epoch": 2, "seed": 0}
    a, b, c = (models.build_model("sinusoid", 0, params, seed) for seed in (5, 5, 6))
    assert a.w.shape == (6,) and torch.equal(a.w, b.w) and not torch.equal(a.w, c.w)
    assert models.build_model("mlp", 16, {}, 0, 10).net[-1].out_features == 10
    assert models.build_model("cifar_cnn", 0, {}, 0, 10).classifier.in_features == 128 * 4 * 4  # width 0 is 1


@pytest.mark.parametrize(
    "name,num_classes",
    [
        ("cifar_resnet18", 10),
        ("cifar_resnet34", 10),
        ("cifar_cnn", 10),
        ("cifar_vgg11", 10),
        ("cifar_vgg16", 10),
        ("cifar_mobilenet_v2", 10),
        ("transformer_lm", VOCAB),
        ("segnet", 6),
        ("unet", 6),
    ],
)
def test_deterministic_given_seed(name, num_classes):
    def weights(seed):
        torch.manual_seed(seed)
        return models.build(name, num_classes=num_classes).state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


# ----------------------------------------------------------------------------------------------------------------
# Plug-ins: torchvision's models and the user's own builders
# ----------------------------------------------------------------------------------------------------------------


def test_any_torchvision_model_with_its_options():
    entry = models.model("torchvision:resnet18")
    assert (entry.input, entry.width, entry.slug(0)) == (None, models.Width.NONE, "torchvision.resnet18")
    with torch.device("meta"):
        ours = entry.build(num_classes=7, width=1, zero_init_residual=True)
        theirs = torchvision.models.resnet18(num_classes=7, zero_init_residual=True)
    assert count(ours) == count(theirs) and ours.fc.out_features == 7
    a, b = (models.build_model("torchvision:mobilenet_v3_small", 0, {}, 3, 5, {"dropout": 0.1}) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # seeded
    assert a.classifier[-1].out_features == 5 and a.classifier[2].p == 0.1


def test_torchvision_errors_say_what_to_do():
    with pytest.raises(
        PluginError, match=r"torchvision .* has no model 'resnet19'; use one of torchvision.models.list_models\(\)"
    ):
        models.model("torchvision:resnet19")
    with pytest.raises(PluginError, match="remove model_options.weights; a run starts from its seed's initial weights"):
        models.model("torchvision:resnet18").build(num_classes=3, width=1, weights="DEFAULT")


BUILDER = """
import torch
from torch import nn


def tiny(num_classes, hidden=4, activation="tanh"):
    act = {"tanh": nn.Tanh(), "relu": nn.ReLU()}[activation]
    return nn.Sequential(nn.Linear(3, hidden), act, nn.Linear(hidden, num_classes))


def not_a_model(num_classes):
    return 42
"""


def test_a_builder_of_your_own_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(BUILDER)
    monkeypatch.chdir(tmp_path)
    entry = models.model("my_models:tiny")
    assert (entry.input, entry.width, models.slug("my_models:tiny", 0)) == (None, models.Width.NONE, "my_models.tiny")
    net = models.build_model(
        "my_models:tiny", 0, {}, seed=1, num_classes=5, options={"hidden": 6, "activation": "relu"}
    )
    assert isinstance(net[1], nn.ReLU) and net[0].out_features == 6 and net[2].out_features == 5
    again = models.build_model(
        "my_models:tiny", 0, {}, seed=1, num_classes=5, options={"hidden": 6, "activation": "relu"}
    )
    assert torch.equal(net[0].weight, again[0].weight)
    with pytest.raises(PluginError, match="'my_models:not_a_model' returned a int, not a torch.nn.Module"):
        models.build_model("my_models:not_a_model", 0, {}, seed=1, num_classes=5)
    with pytest.raises(PluginError, match=r"module 'my_models' \(.*my_models.py\) has no 'huge'; it defines .*'tiny'"):
        models.model("my_models:huge")
    with pytest.raises(
        PluginError,
        match="cannot import module 'lab.nets' of 'lab.nets:big': put lab/nets.py in "
        f"the working directory \\({tmp_path}\\)",
    ):
        models.model("lab.nets:big")
    (tmp_path / "broken_models.py").write_text("import no_such_package\n")
    with pytest.raises(
        PluginError,
        match="module 'broken_models' of 'broken_models:x' imports 'no_such_package', which is not installed",
    ):
        models.model("broken_models:x")
