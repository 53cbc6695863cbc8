"""Pretrained text encoders by name, in the style of keras-hub presets.

Plain Python (no TensorFlow), so `keras-tl list-backbones` answers at once.

keras_tl ships English and Spanish AWD-LSTM language models (English
forward and backward, general and fine-tuned on IMDb reviews; Spanish) in
the repository's `saved_models/` folder (see each folder's
`MODEL_CARD.md`).
Wherever a language model is expected, a preset name works as well as a
folder path:

    keras_tl.build("awd_lstm", num_classes=3, encoder="es")
    load_language_model("en")
    keras-tl ulmfit --encoder en ...

Presets are looked up in `$KERAS_TL_MODELS_DIR` first, then in the
`saved_models/` folder beside the installed package (a clone of the
repository, installed with `pip install -e .`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os

MODELS_DIR_VARIABLE = "KERAS_TL_MODELS_DIR"


@dataclasses.dataclass(frozen=True)
class EncoderPreset:
    """A shipped pretrained language model.

    Args:
        name: the preset's name (`"en"`, `"es"`).
        folder: its folder name under `saved_models/`.
        language: ISO 639-1 code of the text it was trained on.
        description: one line: the corpus and the model's size.
        aliases: other names that mean the same preset.
    """

    name: str
    folder: str
    language: str
    description: str
    aliases: tuple[str, ...] = ()


_PRESETS: dict[str, EncoderPreset] = {}


def register_encoder_preset(preset: EncoderPreset) -> EncoderPreset:
    """Adds a preset; a name (or alias) already taken is an error.

    Example:

    >>> register_encoder_preset(EncoderPreset(
    ...     "pt", "awd_lstm_pt", "pt", "Portuguese news"))  # doctest: +SKIP
    """
    for name in (preset.name, *preset.aliases):
        if name in _PRESETS:
            raise ValueError(
                f"An encoder preset named '{name}' is already registered. "
                f"Pick another name. Received: name={name!r}"
            )
    for name in (preset.name, *preset.aliases):
        _PRESETS[name] = preset
    return preset


def list_encoder_presets() -> list[EncoderPreset]:
    """The registered presets, each once, by name.

    Example:

    >>> [p.name for p in list_encoder_presets()]
    ['en', 'en-bwd', 'en-imdb', 'en-imdb-bwd', 'es']
    """
    unique = {p.name: p for p in _PRESETS.values()}
    return [unique[name] for name in sorted(unique)]


def get_encoder_preset(name: str) -> EncoderPreset:
    """A preset by name or alias; unknown names list the close ones."""
    preset = _PRESETS.get(name)
    if preset is not None:
        return preset
    # "ES", "En-Bwd": the same preset, when only one name matches so.
    folded = [key for key in _PRESETS if key.lower() == str(name).lower()]
    if len(folded) == 1:
        return _PRESETS[folded[0]]
    close = difflib.get_close_matches(
        str(name).lower(), list(_PRESETS), n=3, cutoff=0.5
    )
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"'{name}' is neither a language-model folder nor an encoder "
        f"preset.{hint} Presets: "
        f"{', '.join(p.name for p in list_encoder_presets())} (see "
        "`keras-tl list-backbones`); a folder is one written by "
        f"`keras-tl lm pretrain`. Received: encoder={name!r}"
    )


def models_dirs() -> list[str]:
    """Where presets are looked for, in order."""
    dirs = []
    if os.environ.get(MODELS_DIR_VARIABLE):
        dirs.append(os.environ[MODELS_DIR_VARIABLE])
    package = os.path.dirname(os.path.abspath(__file__))
    dirs.append(os.path.join(os.path.dirname(package), "saved_models"))
    return dirs


def preset_folder(preset: EncoderPreset | str) -> str:
    """The folder that holds a preset's files.

    Raises:
        FileNotFoundError: no models folder holds it (e.g. keras_tl was
            installed from a wheel, without the repository's
            `saved_models/`), saying where it looked and what to do.
    """
    if isinstance(preset, str):
        preset = get_encoder_preset(preset)
    looked = []
    for root in models_dirs():
        folder = os.path.join(root, preset.folder)
        if os.path.exists(os.path.join(folder, "config.json")):
            return folder
        looked.append(folder)
    raise FileNotFoundError(
        f"The '{preset.name}' encoder's files are not here: looked in "
        f"{', '.join(looked)}. They ship in the keras_tl repository's "
        "saved_models/ folder: install from a clone (`pip install -e .`), "
        f"or set {MODELS_DIR_VARIABLE} to a folder that holds "
        f"{preset.folder}/."
    )


def language_model_config(encoder) -> dict:
    """The `config.json` of a language-model folder or preset, as a dict
    (sizes, tokenizer, training, held-out perplexity); no weights are read.

    Example:

    >>> language_model_config("es")["model"]["hidden_dim"]  # doctest: +SKIP
    768
    """
    folder = resolve_encoder(encoder)
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No language model in {folder}: expected {path}, as written "
            "by `keras-tl lm pretrain` (keras_tl.text."
            "pretrain_language_model)."
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_encoder(encoder) -> str:
    """A language-model folder from a folder path or a preset name.

    An existing path always wins, so a folder named like a preset still
    loads from where it is.

    Example:

    >>> resolve_encoder("es")  # doctest: +SKIP
    '.../saved_models/awd_lstm_es'
    """
    path = os.fspath(encoder)
    if os.path.exists(path):
        return path
    if os.sep in path or path.startswith("."):
        raise FileNotFoundError(
            f"No language model in {path}: the folder does not exist. Pass "
            "a folder written by `keras-tl lm pretrain`, or a preset name "
            f"({', '.join(p.name for p in list_encoder_presets())}). "
            f"Received: encoder={path!r}"
        )
    # A preset, or an error that lists the close names.
    return preset_folder(get_encoder_preset(path))


register_encoder_preset(
    EncoderPreset(
        "en",
        "awd_lstm_en",
        "en",
        "English Wikipedia + Wikinews, AWD-LSTM 256/768 x 3, SentencePiece 16k",
        aliases=("awd_lstm_en",),
    )
)
register_encoder_preset(
    EncoderPreset(
        "en-bwd",
        "awd_lstm_en_bwd",
        "en",
        "English Wikipedia + Wikinews, backward (for forward + backward "
        "ensembles with en), AWD-LSTM 256/768 x 3, SentencePiece 16k",
        aliases=("awd_lstm_en_bwd",),
    )
)
register_encoder_preset(
    EncoderPreset(
        "en-imdb",
        "awd_lstm_en_imdb",
        "en",
        "en fine-tuned on IMDb's 25,000 training reviews (movie reviews), "
        "AWD-LSTM 256/768 x 3, SentencePiece 16k",
        aliases=("awd_lstm_en_imdb",),
    )
)
register_encoder_preset(
    EncoderPreset(
        "en-imdb-bwd",
        "awd_lstm_en_imdb_bwd",
        "en",
        "en-bwd fine-tuned on IMDb's 25,000 training reviews, backward (for "
        "forward + backward ensembles with en-imdb), AWD-LSTM 256/768 x 3, "
        "SentencePiece 16k",
        aliases=("awd_lstm_en_imdb_bwd",),
    )
)
register_encoder_preset(
    EncoderPreset(
        "es",
        "awd_lstm_es",
        "es",
        "Spanish press conferences + parliament, AWD-LSTM 256/768 x 3, "
        "SentencePiece 16k",
        aliases=("awd_lstm_es",),
    )
)
