"""Shared machinery of the multi-branch blocks that fuse into one convolution.

Every branch reads the same input, padded once and symmetrically by ``p = (k - 1) // 2``
on each side for ``padding="same"`` (nothing for ``"valid"``); a branch whose kernel is
smaller than ``k`` reads that padded input cropped by the difference, so all branches sample
windows with the same centres. Summing the branches is then *exactly* one ``k×k``
convolution of the padded input whose kernel is the sum of the branch kernels, each
zero-padded around the centre — for strides 1 and 2, odd and even input sizes.

(Keras' own ``padding="same"`` pads asymmetrically — one more pixel bottom/right — when
``(size - 1) % stride`` leaves a remainder, e.g. stride 2 on an even size; a ``1×k`` branch
padded the same way would then sample other pixels than the ``k×k`` one and a naive fusion
would be wrong. Symmetric explicit padding avoids this; the output size is unchanged,
``ceil(size / stride)``.)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import _validate as v
from tenfold.ops.fusion import fold_batch_norm, identity_kernel, pad_kernel

PADDINGS = ("same", "valid")


class Branch:
    """One branch: an optional conv (``None`` = identity), its BN, and its kernel size."""

    def __init__(self, conv: keras.layers.Layer | None, bn: keras.layers.Layer, size: tuple[int, int]) -> None:
        self.conv = conv
        self.bn = bn
        self.size = size


class BranchBlock(keras.layers.Layer):
    """Base class: branches summed in training, one fused ``Conv2D`` after deployment.

    Subclasses implement :meth:`_make_branches` (called in ``build``). With
    ``deploy=True`` the block holds a single ``Conv2D`` named ``fused`` (with a bias), applied
    to the symmetrically padded input; :func:`tenfold.reparam.deploy` creates that form and
    fills it with :meth:`fused_weights`.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        *,
        strides: int = 1,
        padding: str = "same",
        use_bias: bool = False,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        deploy: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = v.integer("filters", filters, low=1)
        self.kernel_size = v.integer("kernel_size", kernel_size, low=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd (the branches are aligned on the kernel centre), "
                f"received {kernel_size!r}."
            )
        self.strides = v.integer("strides", strides, low=1)
        self.padding = v.choice("padding", padding, PADDINGS)
        self.use_bias = v.boolean("use_bias", use_bias)
        self.kernel_initializer = v.keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get,
            "a Keras initializer (a name such as 'he_normal', a config or an instance)",
        )
        self.kernel_regularizer = v.keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get,
            "None or a Keras regularizer (a name such as 'l2', a config or an instance)",
        )
        # the branch BatchNormalizations' momentum and epsilon, checked as there
        self.momentum = v.fraction("momentum", momentum, open_high=True)
        self.epsilon = v.number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True)
        self.deploy = v.boolean("deploy", deploy)
        object.__setattr__(self, "_branch_list", [])
        self.fused: keras.layers.Layer | None = None

    # -- construction -----------------------------------------------------------------
    def _conv(self, size: tuple[int, int], name: str) -> keras.layers.Layer:
        return keras.layers.Conv2D(
            self.filters, size, strides=self.strides, padding="valid", use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy, name=name,
        )

    def _bn(self, name: str) -> keras.layers.Layer:
        # Keras' BatchNormalization on TensorFlow's fused kernel: same weights and results,
        # and each branch's norm no longer dominates the training step (docs/mixed-precision.md)
        from tenfold.layers.fused_batch_norm import FusedBatchNormalization

        return FusedBatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, dtype=self.dtype_policy, name=name
        )

    def _branch_specs(self, in_channels: int) -> list[tuple[str, tuple[int, int], bool]]:
        """``(name, kernel size, is_identity)`` of each branch; implemented by subclasses."""
        raise NotImplementedError  # pragma: no cover

    @property
    def branches(self) -> list[Branch]:
        """The branches (empty in deploy mode or before ``build``)."""
        return self._branch_list

    @property
    def pad(self) -> int:
        return (self.kernel_size - 1) // 2 if self.padding == "same" else 0

    def _padded_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        p = self.pad
        return (
            input_shape[0],
            None if input_shape[1] is None else input_shape[1] + 2 * p,
            None if input_shape[2] is None else input_shape[2] + 2 * p,
            input_shape[3],
        )

    def _cropped_shape(self, shape: tuple[int | None, ...], size: tuple[int, int]) -> tuple[int | None, ...]:
        ch, cw = (self.kernel_size - size[0]) // 2, (self.kernel_size - size[1]) // 2
        return (
            shape[0],
            None if shape[1] is None else shape[1] - 2 * ch,
            None if shape[2] is None else shape[2] - 2 * cw,
            shape[3],
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} takes 4D NHWC inputs, received shape {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError("the channel axis of the input must be known.")
        self._in_channels = int(input_shape[-1])
        padded = self._padded_shape(tuple(input_shape))
        if self.deploy:
            native = self._native_same
            self.fused = keras.layers.Conv2D(
                self.filters, self.kernel_size, strides=self.strides,
                padding="same" if native else "valid", use_bias=True, dtype=self.dtype_policy,
                name="fused",
            )
            self.fused.build(tuple(input_shape) if native else padded)
            return
        branches = []
        for name, size, is_identity in self._branch_specs(self._in_channels):
            conv = None if is_identity else self._conv(size, name)
            bn = self._bn(f"{name}_bn")
            # attributes, so that Keras tracks (saves, trains) the sub-layers
            if conv is not None:
                setattr(self, name, conv)
            setattr(self, f"{name}_bn", bn)
            branches.append(Branch(conv, bn, size))
        object.__setattr__(self, "_branch_list", branches)
        for branch in self.branches:
            shape = self._cropped_shape(padded, branch.size)
            if branch.conv is not None:
                branch.conv.build(shape)
                shape = branch.conv.compute_output_shape(shape)
            branch.bn.build(shape)

    # -- forward ----------------------------------------------------------------------
    def _crop(self, x: Any, size: tuple[int, int]) -> Any:
        ch, cw = (self.kernel_size - size[0]) // 2, (self.kernel_size - size[1]) // 2
        if ch:
            x = x[:, ch:-ch, :, :]
        if cw:
            x = x[:, :, cw:-cw, :]
        return x

    @property
    def _native_same(self) -> bool:
        # with stride 1 Keras' "same" pads (k - 1) / 2 on each side: symmetric already, so
        # the fused conv can pad itself (one op less at inference)
        return self.padding == "same" and self.strides == 1

    def call(self, inputs: Any, training: Any = None) -> Any:
        if self.deploy and self._native_same:
            return self.fused(inputs)
        p = self.pad
        x = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]]) if p else inputs
        if self.deploy:
            return self.fused(x)
        total = None
        for branch in self.branches:
            y = self._crop(x, branch.size)
            if branch.conv is not None:
                y = branch.conv(y)
            elif self.strides != 1:  # pragma: no cover - identity only exists for stride 1
                raise ValueError("identity branch with strides != 1")
            y = branch.bn(y, training=training)
            total = y if total is None else total + y
        return total

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        padded = self._padded_shape(tuple(input_shape))

        def out(n: int | None) -> int | None:
            return None if n is None else (n - self.kernel_size) // self.strides + 1

        return (input_shape[0], out(padded[1]), out(padded[2]), self.filters)

    # -- fusion -----------------------------------------------------------------------
    def fused_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(kernel, bias)`` of the single ``k×k`` conv equal to this block in inference.

        Computed in float64 from the current weights and moving statistics: each branch's
        BatchNormalization is folded into its kernel (``tenfold.ops.fold_batch_norm``),
        the ``1×k``/``k×1``/``1×1``/identity kernels are zero-padded around the centre
        (``tenfold.ops.pad_kernel``) and everything is summed.
        """
        if not self.built:
            raise ValueError(f"{type(self).__name__} {self.name!r} must be built before fusing.")
        if self.deploy:
            return (np.asarray(self.fused.kernel, "float64"), np.asarray(self.fused.bias, "float64"))
        k = self.kernel_size
        kernel = np.zeros((k, k, self._in_channels, self.filters), "float64")
        bias = np.zeros((self.filters,), "float64")
        for branch in self.branches:
            if branch.conv is None:
                w = np.asarray(identity_kernel(self.filters, (1, 1), "float64"))
                b = None
            else:
                w = np.asarray(branch.conv.kernel, "float64")
                b = np.asarray(branch.conv.bias, "float64") if branch.conv.use_bias else None
            w, b = fold_batch_norm(w, b, **bn_statistics(branch.bn))
            kernel += np.asarray(pad_kernel(w, (k, k)), "float64")
            bias += np.asarray(b, "float64")
        return kernel, bias

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            kernel_initializer=keras.saving.serialize_keras_object(self.kernel_initializer),
            kernel_regularizer=keras.saving.serialize_keras_object(self.kernel_regularizer),
            momentum=self.momentum,
            epsilon=self.epsilon,
            deploy=self.deploy,
        )
        return config


def bn_statistics(bn: keras.layers.Layer) -> dict[str, Any]:
    """The inference affine map of a BatchNormalization-like layer, as float64 arrays."""
    if getattr(bn, "axis", -1) not in (-1, 3) and not (
        isinstance(bn.axis, (list, tuple)) and list(bn.axis) in ([-1], [3])
    ):
        raise ValueError(f"only channels-last BatchNormalization can be folded, {bn.name!r} has axis={bn.axis}.")
    return {
        "mean": np.asarray(bn.moving_mean, "float64"),
        "variance": np.asarray(bn.moving_variance, "float64"),
        "gamma": None if bn.gamma is None else np.asarray(bn.gamma, "float64"),
        "beta": None if bn.beta is None else np.asarray(bn.beta, "float64"),
        "epsilon": float(bn.epsilon),
    }
