import pytest
import torch

from model.networks import ARCHS, build_arch
from utils.errors import ConfigError


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_output_shape(name):
    torch.manual_seed(0)
    net = build_arch(name, 7, {"width": 8}).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_preactresnet18_param_count():
    # Official SOP layout (stem BN, no final BN): kuangliu's 11,171,146 + 128.
    net = build_arch("PreActResNet18", 10, {})
    assert sum(p.numel() for p in net.parameters()) == 11_171_274


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    net = build_arch(name, 10, {"width": 8}).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = net(x)
    net_cl = net.to(memory_format=torch.channels_last)
    out = net_cl(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_autocast_cpu_train_step():
    net = build_arch("PreActResNet18", 10, {"width": 8}).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(torch.randn(2, 3, 32, 32)).float().logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_unknown_type():
    with pytest.raises(ConfigError, match=r"arch\.type.*PreActResNet18.*ResNet34"):
        build_arch("ResNet1000", 10, {})


def test_unknown_arg():
    with pytest.raises(ConfigError, match=r"arch\.args\.depth"):
        build_arch("ResNet34", 10, {"depth": 3})


def test_bad_width():
    with pytest.raises(ConfigError, match=r"arch\.args\.width"):
        build_arch("PreActResNet18", 10, {"width": "64"})


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_weights_keep_pytorchs_default_init_as_the_official_code(name):
    # kaiming_uniform_(a=sqrt(5)): uniform in +-1/sqrt(fan_in), std 1/sqrt(3 fan_in). The
    # torchvision-style kaiming_normal_(fan_out) would give a 3x3 conv 16 -> 16 std sqrt(2/144) = 0.118.
    torch.manual_seed(0)
    net = build_arch(name, 10, {"width": 16})
    conv = net.layer1[0].conv2                                   # 16 -> 16 channels, 3x3: fan_in 144
    assert conv.weight.abs().max() <= 1 / 12
    assert float(conv.weight.detach().std()) == pytest.approx(1 / 12 / 3 ** 0.5, rel=0.05)   # 0.0481
    bn = net.bn1
    assert torch.equal(bn.weight, torch.ones(16)) and torch.equal(bn.bias, torch.zeros(16))


@pytest.mark.parametrize("identity, carries", [("preactivated", "relu(bn1(x))"), ("input", "x")])
def test_an_identity_block_adds_what_its_identity_shortcut_names(identity, carries):
    # with the residual branch silenced (conv2 = 0) a block returns exactly its shortcut: the official
    # code's relu(bn1(x)), or x as in He et al.; a block that changes shape uses its 1x1 conv either way
    torch.manual_seed(0)
    net = build_arch("PreActResNet18", 10, {"width": 8, "identity_shortcut": identity}).eval()
    block = net.layer1[1]
    torch.nn.init.zeros_(block.conv2.weight)
    with torch.no_grad():
        block.bn1.running_mean.fill_(0.5)
    x = torch.randn(2, 8, 8, 8)
    expected = torch.relu(block.bn1(x)) if carries != "x" else x
    torch.testing.assert_close(block(x), expected)
    assert (block(x) < 0).any() == (carries == "x")
    down = net.layer2[0]
    torch.nn.init.zeros_(down.conv2.weight)
    torch.testing.assert_close(down(x), down.shortcut(torch.relu(down.bn1(x))))


def test_both_identity_shortcuts_have_the_same_parameters():
    nets = [build_arch("PreActResNet18", 10, {"width": 8, "identity_shortcut": s}) for s in ("preactivated", "input")]
    assert [n for n, _ in nets[0].named_parameters()] == [n for n, _ in nets[1].named_parameters()]
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(nets[0].eval()(x), nets[1].eval()(x))


def test_bad_identity_shortcut():
    with pytest.raises(ConfigError, match=r"'arch\.args\.identity_shortcut' must be one of preactivated, input"):
        build_arch("PreActResNet18", 10, {"identity_shortcut": "x"})
