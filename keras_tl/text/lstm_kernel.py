"""The LSTM kernels AWD-LSTM runs on: a whole sequence with a hand-written
gradient (training on CPUs) and a switch that keeps Keras' fused cuDNN
kernel out of exports served on CPUs."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


@contextlib.contextmanager
def cudnn_off(*models):
    """Traces LSTMs without the cuDNN kernel, for exports served on CPU.

    A SavedModel traced on a GPU with the fused kernel inside fails to run
    where there is no GPU. Within this context every LSTM in `models`
    uses the portable kernel (same numbers).

    Example:

    >>> with cudnn_off(model):  # doctest: +SKIP
    ...     tf.saved_model.save(module, path)
    """
    lstms = [
        layer
        for model in models
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.LSTM)
    ]
    saved = [lstm.use_cudnn for lstm in lstms]
    for lstm in lstms:
        lstm.use_cudnn = False
    try:
        yield
    finally:
        for lstm, value in zip(lstms, saved, strict=True):
            lstm.use_cudnn = value


def lstm_sequence(inputs, h0, c0, recurrent_kernel):
    """A whole LSTM sequence with a hand-written gradient (training, CPU).

    `inputs` are the projected inputs `x_t @ kernel + bias`, time major
    `(time, batch, 4 * units)`, gates in Keras' order (i, f, c, o) with
    sigmoid and tanh. Returns every `h_t`, time major, and the last `h`
    and `c`.

    The same numbers as Keras' loop. Its gradient differs in how it is
    computed: TensorFlow's generic gradient of a while loop adds one small
    `h_{t-1}^T @ dz_t` product per step to the recurrent kernel's
    gradient; here the backward loop only carries `dh` and `dc`, and that
    gradient is one large product over all steps (as fused LSTM kernels
    do).
    """

    @tf.custom_gradient
    def sequence(inputs, h0, c0, kernel):
        steps = inputs.shape[0] or tf.shape(inputs)[0]

        def forward(t, h, c, hs, cs, gates):
            z = inputs[t] + tf.matmul(h, kernel)
            i, f, g, o = tf.split(z, 4, axis=-1)
            i, f, o = tf.sigmoid(i), tf.sigmoid(f), tf.sigmoid(o)
            g = tf.tanh(g)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return (
                t + 1,
                h,
                c,
                hs.write(t, h),
                cs.write(t, c),
                gates.write(t, tf.concat([i, f, g, o], axis=-1)),
            )

        arrays = [tf.TensorArray(inputs.dtype, size=steps) for _ in range(3)]
        _, h, c, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < steps, forward, (0, h0, c0, *arrays)
        )
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()

        def gradient(d_hs, d_h, d_c):
            d_hs = tf.zeros_like(hs) if d_hs is None else d_hs
            d_h = tf.zeros_like(h0) if d_h is None else d_h
            d_c = tf.zeros_like(c0) if d_c is None else d_c
            c_before = tf.concat([c0[None], cs[:-1]], axis=0)
            kernel_t = tf.transpose(kernel)

            def backward(t, d_h, d_c, d_zs):
                i, f, g, o = tf.split(gates[t], 4, axis=-1)
                d_h = d_h + d_hs[t]
                tanh_c = tf.tanh(cs[t])
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat(
                    [
                        d_c * g * i * (1 - i),
                        d_c * c_before[t] * f * (1 - f),
                        d_c * i * (1 - g * g),
                        d_h * tanh_c * o * (1 - o),
                    ],
                    axis=-1,
                )
                d_h = tf.matmul(d_z, kernel_t)
                return t - 1, d_h, d_c * f, d_zs.write(t, d_z)

            _, d_h0, d_c0, d_zs = tf.while_loop(
                lambda t, *_: t >= 0,
                backward,
                (steps - 1, d_h, d_c, tf.TensorArray(d_h.dtype, size=steps)),
            )
            d_zs = d_zs.stack()
            h_before = tf.concat([h0[None], hs[:-1]], axis=0)
            units = kernel.shape[0]
            d_kernel = tf.matmul(
                tf.reshape(h_before, (-1, units)),
                tf.reshape(d_zs, (-1, 4 * units)),
                transpose_a=True,
            )
            return d_zs, d_h0, d_c0, d_kernel

        return (hs, h, c), gradient

    return sequence(inputs, h0, c0, recurrent_kernel)
