"""The model harness: every registered model must pass these (tests parametrized over the registry).

In the manner of segmentation_models_pytorch's ``BaseModelTester`` and timm's registry-wide
tests: a new architecture registered with ``@register_model`` is tested here without any
edit. Widths 4-8 keep the whole file fast on a shared CPU.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from iphbench.models import SegmentationModel, create_model, list_models

WIDTH = 4
MODELS = list_models()

# torch's own compile internals still call the deprecated torch.jit.script_method
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_holds_the_papers_four_models() -> None:
    assert MODELS == ["attention_unet", "fpn", "transunet", "unet"]


@pytest.mark.parametrize("name", MODELS)
class TestModel:
    """Behaviour every model shares."""

    @pytest.mark.parametrize("hw", [(64, 64), (128, 96)])
    def test_output_shape_and_finite(self, name: str, hw: tuple[int, int]) -> None:
        torch.manual_seed(0)
        model = create_model(name, width=WIDTH)
        assert isinstance(model, SegmentationModel)
        x = torch.rand(2, 1, *hw)
        y = model(x)  # train mode
        assert y.shape == (2, 1, *hw)
        assert torch.isfinite(y).all()
        model.eval()
        with torch.no_grad():
            y_eval = model(x)
        assert y_eval.shape == (2, 1, *hw)
        assert torch.isfinite(y_eval).all()

    def test_classes_and_channels(self, name: str) -> None:
        model = create_model(name, in_channels=3, classes=2, width=WIDTH)
        assert model(torch.rand(2, 3, 32, 48)).shape == (2, 2, 32, 48)

    def test_gradients_reach_every_parameter(self, name: str) -> None:
        torch.manual_seed(0)
        model = create_model(name, width=WIDTH)
        y = model(torch.rand(2, 1, 64, 64))
        (y - 1.0).square().mean().backward()
        first_conv = model.encoder.convs()[0]
        assert first_conv.weight.grad is not None
        assert first_conv.weight.grad.abs().sum() > 0
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert not unused, f"parameters without gradient: {unused}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    def test_same_seed_same_weights(self, name: str) -> None:
        torch.manual_seed(123)
        a = create_model(name, width=WIDTH).state_dict()
        torch.manual_seed(123)
        b = create_model(name, width=WIDTH).state_dict()
        torch.manual_seed(124)
        c = create_model(name, width=WIDTH).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)

    def test_width_scaling(self, name: str) -> None:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            p8, p16, p64 = (n_params(create_model(name, width=w)) for w in (8, 16, 64))
        # conv / linear weights grow with width**2; biases, norms and the first conv linearly;
        # the U-Nets' 16-channel decoder floor (narrow widths only) lowers the 8→16 ratio a little
        assert p8 < p16 < p64
        assert 3.8 < p16 / p8 < 4.0, p16 / p8
        assert 15.5 < p64 / p16 < 16.0, p64 / p16

    def test_channels_last_same_output(self, name: str) -> None:
        torch.manual_seed(0)
        model = create_model(name, width=WIDTH).eval()
        x = torch.rand(2, 1, 64, 48)
        with torch.no_grad():
            ref = model(x)
            model = model.to(memory_format=torch.channels_last)
            out = model(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)

    def test_compile_full_graph(self, name: str) -> None:
        """Dynamo captures the forward as one graph (no graph breaks, no data-dependent shapes).

        The ``aot_eager`` backend runs the capture stack (Dynamo + AOTAutograd) without C++
        code generation, so it is quick on CPU; the slow tests below add the backward graph
        and the inductor backend.
        """
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = create_model(name, width=WIDTH).eval()
        x = torch.rand(2, 1, 32, 32)
        with torch.no_grad():
            out = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
            ref = model(x)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)

    @pytest.mark.slow
    def test_compile_training_step(self, name: str) -> None:
        """Forward and backward in train mode compile as full graphs and give finite gradients."""
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = create_model(name, width=WIDTH)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        compiled(torch.rand(2, 1, 32, 32)).square().mean().backward()
        grad = model.encoder.convs()[0].weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0

    def test_bad_spatial_shape(self, name: str) -> None:
        model = create_model(name, width=WIDTH)
        assert model.required_multiple == 16
        with pytest.raises(ValueError, match=r"multiples of 16.*\(1, 1, 60, 64\).*64x64 patches are fine"):
            model(torch.rand(1, 1, 60, 64))
        with pytest.raises(ValueError, match="W=40"):
            model(torch.rand(1, 1, 64, 40))

    def test_bad_channels_and_rank(self, name: str) -> None:
        model = create_model(name, width=WIDTH)
        with pytest.raises(ValueError, match="in_channels=3"):
            model(torch.rand(1, 3, 64, 64))
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            model(torch.rand(1, 64, 64))

    def test_model_args_rebuild_the_architecture(self, name: str) -> None:
        model = create_model(name, width=WIDTH, batch_norm=False)
        assert model.model_args == {
            "name": name,
            "in_channels": 1,
            "classes": 1,
            "width": WIDTH,
            "batch_norm": False,
        }
        rebuilt = create_model(**model.model_args)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    @pytest.mark.slow
    def test_compile_inductor(self, name: str) -> None:
        """The default inductor backend compiles and matches eager (C++ codegen: slow on CPU)."""
        torch._dynamo.reset()
        torch.manual_seed(0)
        kwargs = (
            {"depth": 1} if name == "transunet" else {}
        )  # identical blocks add compile time, not coverage
        model = create_model(name, width=WIDTH, **kwargs).eval()
        x = torch.rand(1, 1, 32, 32)
        with torch.no_grad():
            ref = model(x)
            if shutil.which("cc") or shutil.which("gcc"):
                out = torch.compile(model, fullgraph=True)(x)
            else:  # inductor's CPU backend needs a C compiler; trace instead where there is none
                out = torch.jit.trace(model, x)(x)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(
        KeyError, match=r"unknown model 'resnet'.*'attention_unet', 'fpn', 'transunet', 'unet'"
    ):
        create_model("resnet")


def test_unknown_setting_names_the_model() -> None:
    with pytest.raises(TypeError, match=r"model 'unet' does not take one of the settings \['depth'\]"):
        create_model("unet", width=4, depth=2)


@pytest.mark.parametrize("width", [0, -1, 2.5, True])
def test_bad_width(width: object) -> None:
    with pytest.raises(ValueError, match="width must be a positive integer"):
        create_model("unet", width=width)  # type: ignore[arg-type]
