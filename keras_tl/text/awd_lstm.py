"""AWD-LSTM (Merity et al. 2017), the language model inside ULMFiT.

The regularisers of "Regularizing and Optimizing LSTM Language Models":
- embedding dropout (sec. 4.3): whole vocabulary rows of the embedding are
  dropped, the same for every position of the batch;
- locked (variational) dropout (sec. 4.2) on the embeddings, between LSTM
  layers and on the output: one mask per sequence, shared over time, a
  `Dropout` whose `noise_shape` is `(None, 1, None)`;
- weight drop (sec. 2): DropConnect on the recurrent kernel, one mask per
  forward pass. The dropped kernel is passed to Keras' own LSTM kernel, so
  the fused cuDNN path stays usable on GPUs; on CPUs, training runs a loop
  with a hand-written gradient (the same numbers, faster);
- tied embedding and decoder (sec. 4.5), AR and TAR (sec. 4.6).

Defaults are fastai's (embedding 400, hidden 1152, 3 layers; dropout on
output 0.1, hidden 0.15, input 0.25, embedding 0.02, weights 0.2), all
scaled by one `drop_mult`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_tl.checks import check_positive_int
from keras_tl.distribute import device_kind
from keras_tl.text.lstm_kernel import lstm_sequence

# fastai's awd_lstm_lm_config dropouts, before drop_mult.
DROPOUTS = {
    "output_dropout": 0.1,
    "hidden_dropout": 0.15,
    "input_dropout": 0.25,
    "embedding_dropout": 0.02,
    "weight_dropout": 0.2,
}


def _locked_dropout(rate, name):
    # One mask per sequence and feature, shared across time steps.
    return keras.layers.Dropout(rate, noise_shape=(None, 1, None), name=name)


@keras.saving.register_keras_serializable(package="keras_tl")
class EmbeddingDropout(keras.layers.ReversibleEmbedding):
    """A tied embedding whose input lookup drops whole vocabulary rows.

    In training each word type is dropped (all its occurrences in the
    batch) with probability `embedding_dropout`; kept rows are scaled by
    `1 / (1 - embedding_dropout)`. `reverse=True` uses the embedding as the
    decoder, without dropout.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding size.
        embedding_dropout: probability of dropping a word type.
        seed: random seed.

    Example:

    >>> layer = EmbeddingDropout(100, 8, embedding_dropout=0.1)
    >>> layer(np.array([[1, 2]])).shape
    (1, 2, 8)
    """

    def __init__(
        self, input_dim, output_dim, embedding_dropout=0.0, seed=None, **kwargs
    ):
        super().__init__(input_dim, output_dim, **kwargs)
        if not 0 <= embedding_dropout < 1:
            raise ValueError(
                "`embedding_dropout` must be in [0, 1). Received: "
                f"embedding_dropout={embedding_dropout}"
            )
        self.embedding_dropout = embedding_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, reverse=False, training=None):
        outputs = super().call(inputs, reverse=reverse)
        if reverse or not training or not self.embedding_dropout:
            return outputs
        keep = keras.random.dropout(
            ops.ones((self.input_dim, 1), dtype=outputs.dtype),
            self.embedding_dropout,
            seed=self.seed_generator,
        )
        # Same as dropping rows of the table, without touching the table.
        return outputs * ops.take(keep, inputs, axis=0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"embedding_dropout": self.embedding_dropout, "seed": self.seed}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_tl")
class WeightDropLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with DropConnect on its recurrent kernel.

    In training, each forward pass uses the recurrent kernel with entries
    dropped with probability `weight_dropout` (kept ones scaled by
    `1 / (1 - weight_dropout)`); the stored kernel never changes. At
    inference it is exactly an LSTM.

    Args:
        units: hidden size.
        weight_dropout: probability of dropping a recurrent weight.
        seed: random seed.
        **kwargs: `keras.layers.LSTM` arguments (`return_sequences`,
            `stateful`, ...).

    Example:

    >>> layer = WeightDropLSTM(8, weight_dropout=0.2, return_sequences=True)
    """

    def __init__(self, units, weight_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, **kwargs)
        if not 0 <= weight_dropout < 1:
            raise ValueError(
                "`weight_dropout` must be in [0, 1). Received: "
                f"weight_dropout={weight_dropout}"
            )
        self.weight_dropout = weight_dropout
        self.seed = seed
        self.weight_seed_generator = keras.random.SeedGenerator(seed)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not training or not self.weight_dropout:
            return self._loop(sequences, initial_state, mask, training)
        stored = self.cell.recurrent_kernel
        dropped = keras.random.dropout(
            stored.value,
            self.weight_dropout,
            seed=self.weight_seed_generator,
        )
        # Swap the tensor in for this call only (not tracked as a weight):
        # both the fused kernel and the step-by-step cell read it.
        object.__setattr__(self.cell, "recurrent_kernel", dropped)
        try:
            return self._loop(sequences, initial_state, mask, training)
        finally:
            object.__setattr__(self.cell, "recurrent_kernel", stored)

    def _loop(self, sequences, initial_state, mask, training):
        cell = self.cell
        if (
            tf.config.list_logical_devices("GPU")
            or cell.dropout
            or cell.recurrent_dropout
            or not cell.use_bias
        ):
            # Keras' own loop, which picks the fused cuDNN kernel on GPUs.
            return super().inner_loop(
                sequences, initial_state, mask, training=training
            )
        # On CPU, project every time step's input in one matrix product
        # (as cuDNN does) rather than one small product per step: about
        # 5 % faster at AWD-LSTM size, same numbers.
        # As one 2-D product: a 3-D one becomes a tensordot whose gradient
        # XLA cannot compile when the batch size is unknown.
        shape = ops.shape(sequences)
        flat = ops.reshape(sequences, (-1, sequences.shape[-1]))
        projected = ops.reshape(
            ops.matmul(flat, cell.kernel) + cell.bias,
            (shape[0], shape[1], cell.kernel.shape[-1]),
        )
        if training and self._fused_gradient_applies(mask):
            # CPUs only: on TPUs XLA compiles Keras' loop.
            outputs, h, c = lstm_sequence(
                ops.transpose(projected, (1, 0, 2)),
                *initial_state,
                # A tensor, not the variable: the gradient is for it.
                tf.convert_to_tensor(cell.recurrent_kernel),
            )
            return h, ops.transpose(outputs, (1, 0, 2)), [h, c]

        def step(inputs, states):
            h, c = states
            z = inputs + ops.matmul(h, cell.recurrent_kernel)
            c, o = cell._compute_carry_and_output_fused(
                ops.split(z, 4, axis=-1), c
            )
            h = o * cell.activation(c)
            return h, [h, c]

        return keras.src.backend.rnn(
            step,
            projected,
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def _fused_gradient_applies(self, mask):

        cell = self.cell
        return (
            device_kind() == "cpu"
            and mask is None
            and not self.go_backwards
            and not self.unroll
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        if self.stateful and self.states is not None:
            # Under a strategy the state holds one replica's rows.
            self._expected_batch_size = int(self.states[0].shape[0])

    @keras.src.utils.tracking.no_automatic_dependency_tracking
    def _create_state_variables(self, batch_size):
        # Keras makes one mirrored state for all replicas, which cannot
        # hold different rows on each. Under a strategy with several
        # replicas each gets its own state (a sync-on-read variable, as
        # Keras metrics use) for its slice of the global batch; the slices
        # keep their order from batch to batch, so the state carries over.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas == 1:
            return super()._create_state_variables(batch_size)
        if batch_size % replicas:
            raise ValueError(
                f"A stateful layer splits the batch over {replicas} "
                f"replicas, so the batch size must be a multiple of "
                f"{replicas}. Received: batch_size={batch_size}"
            )
        with keras.src.backend.name_scope(self.name, caller=self):
            self.states = [
                keras.Variable(
                    value,
                    trainable=False,
                    dtype=self.variable_dtype,
                    name="rnn_state",
                    synchronization="on_read",
                    # Saving and inspecting read the first replica's rows.
                    aggregation="only_first_replica",
                )
                for value in self.get_initial_state(batch_size // replicas)
            ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {"weight_dropout": self.weight_dropout, "seed": self.seed}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_tl")
class AWDLSTMEncoder(keras.layers.Layer):
    """Embedding and stacked weight-dropped LSTMs: the reusable encoder.

    Maps token ids `(batch, time)` to the last LSTM layer's outputs
    `(batch, time, embedding_dim)` (before output dropout), as both the
    language model and the ULMFiT classifier use it.

    Args:
        vocabulary_size: number of token ids.
        embedding_dim: embedding size, also the last layer's size (tied
            decoder).
        hidden_dim: size of the inner LSTM layers.
        num_layers: number of LSTM layers.
        embedding_dropout, input_dropout, hidden_dropout, weight_dropout:
            the AWD-LSTM dropouts (see the module docstring), before
            `drop_mult`.
        drop_mult: multiplies every dropout (fastai's knob).
        stateful: carry the hidden state from one batch to the next (needs
            a fixed batch size); reset it with `reset_state()`. Under a
            `tf.distribute` strategy, build the model in its scope with the
            global batch (`model.build((batch_size, sequence_length))`):
            each replica then carries the state of its rows.
        seed: random seed of the embedding and weight dropouts.

    Example:

    >>> encoder = AWDLSTMEncoder(100, embedding_dim=8, hidden_dim=12)
    >>> encoder(np.zeros((2, 5), "int32")).shape
    (2, 5, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=400,
        hidden_dim=1152,
        num_layers=3,
        embedding_dropout=DROPOUTS["embedding_dropout"],
        input_dropout=DROPOUTS["input_dropout"],
        hidden_dropout=DROPOUTS["hidden_dropout"],
        weight_dropout=DROPOUTS["weight_dropout"],
        drop_mult=1.0,
        stateful=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("embedding_dim", embedding_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
        ):
            check_positive_int(name, value)
        if not drop_mult >= 0:
            raise ValueError(f"`drop_mult` must be >= 0. Received: {drop_mult}")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.embedding_dropout = embedding_dropout
        self.input_dropout = input_dropout
        self.hidden_dropout = hidden_dropout
        self.weight_dropout = weight_dropout
        self.drop_mult = drop_mult
        self.stateful = stateful
        self.seed = seed
        self.embedding = EmbeddingDropout(
            vocabulary_size,
            embedding_dim,
            embedding_dropout=embedding_dropout * drop_mult,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            seed=seed,
            name="embedding",
        )
        self.input_dropout_layer = _locked_dropout(
            input_dropout * drop_mult, "input_dropout"
        )
        self.lstms = []
        self.hidden_dropout_layers = []
        for i in range(num_layers):
            last = i == num_layers - 1
            self.lstms.append(
                WeightDropLSTM(
                    embedding_dim if last else hidden_dim,
                    weight_dropout=weight_dropout * drop_mult,
                    return_sequences=True,
                    stateful=stateful,
                    seed=None if seed is None else seed + 1 + i,
                    name=f"lstm_{i}",
                )
            )
            if not last:
                self.hidden_dropout_layers.append(
                    _locked_dropout(
                        hidden_dropout * drop_mult, f"hidden_dropout_{i}"
                    )
                )

    def build(self, input_shape):
        self.embedding.build(input_shape)
        shape = tuple(input_shape) + (self.embedding_dim,)
        for lstm in self.lstms:
            lstm.build(shape)
            shape = shape[:-1] + (lstm.units,)
        self.built = True

    def call(self, inputs, training=None, return_all=False):
        x = self.embedding(inputs, training=training)
        x = self.input_dropout_layer(x, training=training)
        outputs = []
        for i, lstm in enumerate(self.lstms):
            x = lstm(x, training=training)
            outputs.append(x)
            if i < len(self.hidden_dropout_layers):
                x = self.hidden_dropout_layers[i](x, training=training)
        return outputs if return_all else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def zero_state(self, batch_size):
        """`[[h, c], ...]` zeros, one pair per layer, for `call_with_state`."""
        return [
            [ops.zeros((batch_size, lstm.units), lstm.compute_dtype)] * 2
            for lstm in self.lstms
        ]

    def call_with_state(self, inputs, states, mask=None, training=None):
        """Reads `inputs` from the given state; returns `(outputs, states)`.

        What a document reader needs to carry the state across chunks
        without a stateful layer (and so with any batch size). Where
        `mask` (batch, time) is False, a row's state is left unchanged.
        """
        x = self.embedding(inputs, training=training)
        x = self.input_dropout_layer(x, training=training)
        new_states = []
        for i, lstm in enumerate(self.lstms):
            state = [ops.cast(s, lstm.compute_dtype) for s in states[i]]
            _, x, state = lstm.inner_loop(x, state, mask, training=training)
            x = ops.cast(x, lstm.compute_dtype)
            new_states.append([ops.cast(s, lstm.compute_dtype) for s in state])
            if i < len(self.hidden_dropout_layers):
                x = self.hidden_dropout_layers[i](x, training=training)
        return x, new_states

    def reset_state(self):
        """Zeroes the carried hidden state (stateful encoders)."""
        for lstm in self.lstms:
            if lstm.stateful and lstm.states is not None:
                lstm.reset_state()

    def layer_groups(self):
        """[embedding], then one group per LSTM layer (with its dropout)."""
        groups = [[self.embedding, self.input_dropout_layer]]
        for i, lstm in enumerate(self.lstms):
            group = [lstm]
            if i < len(self.hidden_dropout_layers):
                group.append(self.hidden_dropout_layers[i])
            groups.append(group)
        return groups

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "embedding_dropout": self.embedding_dropout,
                "input_dropout": self.input_dropout,
                "hidden_dropout": self.hidden_dropout,
                "weight_dropout": self.weight_dropout,
                "drop_mult": self.drop_mult,
                "stateful": self.stateful,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_tl")
class AWDLSTMLanguageModel(keras.Model):
    """The AWD-LSTM language model: encoder, output dropout, tied decoder.

    Takes token ids `(batch, time)` and returns next-token logits
    `(batch, time, vocabulary_size)`. Adds activation regularisation
    (`alpha * mean(h_dropped ** 2)`) and temporal activation regularisation
    (`beta * mean((h_t - h_{t-1}) ** 2)`) on the last layer to the loss in
    training (Merity et al., sec. 4.6).

    Layer groups (for freezing and discriminative rates) follow fastai's
    language model: one per LSTM layer, then the embedding and decoder.

    Args:
        vocabulary_size, embedding_dim, hidden_dim, num_layers, dropouts,
            drop_mult, stateful, seed: see `AWDLSTMEncoder`.
        output_dropout: locked dropout on the last layer's output.
        activation_regularization: AR's alpha (fastai 2.0).
        temporal_activation_regularization: TAR's beta (fastai 1.0).

    Example:

    >>> lm = AWDLSTMLanguageModel(100, embedding_dim=8, hidden_dim=12)
    >>> lm(np.zeros((2, 5), "int32")).shape
    (2, 5, 100)
    """

    rate_policy = "language_model"  # see keras_tl.recipes.default_rates

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=400,
        hidden_dim=1152,
        num_layers=3,
        output_dropout=DROPOUTS["output_dropout"],
        embedding_dropout=DROPOUTS["embedding_dropout"],
        input_dropout=DROPOUTS["input_dropout"],
        hidden_dropout=DROPOUTS["hidden_dropout"],
        weight_dropout=DROPOUTS["weight_dropout"],
        drop_mult=1.0,
        activation_regularization=2.0,
        temporal_activation_regularization=1.0,
        stateful=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = AWDLSTMEncoder(
            vocabulary_size,
            embedding_dim=embedding_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            embedding_dropout=embedding_dropout,
            input_dropout=input_dropout,
            hidden_dropout=hidden_dropout,
            weight_dropout=weight_dropout,
            drop_mult=drop_mult,
            stateful=stateful,
            seed=seed,
            name="encoder",
        )
        self.output_dropout = output_dropout
        self.output_dropout_layer = _locked_dropout(
            output_dropout * drop_mult, "output_dropout"
        )
        self.activation_regularization = activation_regularization
        self.temporal_activation_regularization = (
            temporal_activation_regularization
        )

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder_bias = self.add_weight(
            shape=(self.encoder.vocabulary_size,),
            initializer="zeros",
            # Always read in float32: the logits are float32 under a mixed
            # policy too (softmax and loss in full precision).
            autocast=False,
            name="decoder_bias",
        )
        self.built = True

    def call(self, inputs, training=None):
        raw = self.encoder(inputs, training=training)
        dropped = self.output_dropout_layer(raw, training=training)
        if training:
            # In float32, as Keras sums the losses (a mixed policy computes
            # the activations in half precision).
            if self.activation_regularization:
                self.add_loss(
                    self.activation_regularization
                    * ops.mean(ops.square(ops.cast(dropped, "float32")))
                )
            if self.temporal_activation_regularization:
                step = ops.cast(raw[:, 1:] - raw[:, :-1], "float32")
                self.add_loss(
                    self.temporal_activation_regularization
                    * ops.mean(ops.square(step))
                )
        logits = self.encoder.embedding(dropped, reverse=True)
        return ops.cast(logits, "float32") + self.decoder_bias

    def reset_state(self):
        self.encoder.reset_state()

    def layer_groups(self):
        lstm_groups = self.encoder.layer_groups()
        embedding = lstm_groups[0] + [self.output_dropout_layer]
        return lstm_groups[1:] + [embedding]

    def get_config(self):
        encoder = self.encoder.get_config()
        config = {"name": self.name, "trainable": self.trainable}
        for key in (
            "vocabulary_size",
            "embedding_dim",
            "hidden_dim",
            "num_layers",
            "embedding_dropout",
            "input_dropout",
            "hidden_dropout",
            "weight_dropout",
            "drop_mult",
            "stateful",
            "seed",
        ):
            config[key] = encoder[key]
        config.update(
            {
                "output_dropout": self.output_dropout,
                "activation_regularization": self.activation_regularization,
                "temporal_activation_regularization": (
                    self.temporal_activation_regularization
                ),
            }
        )
        return config
