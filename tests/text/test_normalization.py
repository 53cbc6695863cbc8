import numpy as np
import pytest
import tensorflow as tf

from keras_tl.text import SubwordTokenizer, load_tokenizer, save_tokenizer
from keras_tl.text.normalization import denormalize, normalize


def _normalized(texts):
    return [t.decode("utf-8") for t in normalize(tf.constant(texts)).numpy()]


@pytest.mark.parametrize(
    "raw, expected",
    [
        # Case markers: capitalised, all capitals, lowercase untouched.
        ("El FMI dijo", "xxmaj el xxup fmi dijo"),
        ("The IMF said", "xxmaj the xxup imf said"),
        # Spanish capitals and opening marks.
        (
            "¿Qué tal, ÁNGEL? ¡Ñandú!",
            "xxmaj ¿qué tal, xxup ángel? xxmaj ¡ñandú!",
        ),
        # "I" and one-letter words are capitalised, not capitals.
        ("I am", "xxmaj i am"),
        # Mixed case keeps one marker for its first letter.
        ("McDonald's", "xxmaj mcdonald's"),
        # HTML line breaks, tags and entities.
        ("good<br /><br />bad", "good bad"),
        ("a &amp; b &quot;c&quot; &#39;d&#39;", "a & b \"c\" 'd'"),
        ("<i>fine</i> film", "fine film"),
        # Repeats cut to three, within a text only.
        ("sooooo goood!!!!!!", "sooo goood!!!"),
        ("nooooo jajajaja ¡¡¡¡sí!!!!", "nooo jajajaja ¡¡¡sí!!!"),
        # NFKC: ligatures and full-width letters fold.
        ("ﬁne ｆｕｌｌ", "fine full"),
        # Whitespace runs collapse.
        ("a \t b\n\nc  ", "a b c"),
        ("", ""),
    ],
)
def test_normalization_rules(raw, expected):
    assert _normalized([raw]) == [expected]


def test_repeats_do_not_run_across_texts():
    assert _normalized(["aa", "aa", "aaaa"]) == ["aa", "aa", "aaa"]


def test_normalize_keeps_shape_and_none_is_identity():
    assert normalize(tf.constant("HOLA")).numpy() == b"xxup hola"
    texts = tf.constant(["HOLA  mundo"])
    assert normalize(texts, None).numpy().tolist() == [b"HOLA  mundo"]
    with pytest.raises(ValueError, match="normalization"):
        normalize(texts, "fastai")


@pytest.mark.parametrize(
    "text",
    [
        "El FMI dijo que ¿Qué tal? ¡HOLA, Señor Núñez!",
        "The IMF said (Yes) it's I",
    ],
)
def test_denormalize_undoes_the_case_markers(text):
    assert denormalize(_normalized([text])[0]) == text


def test_denormalize_reads_stacked_markers_of_generated_text():
    # A language model can emit two markers in a row: the last one counts,
    # and neither is left in the text.
    assert denormalize("xxmaj xxmaj el xxup xxmaj fmi") == "El Fmi"
    assert denormalize("xxmaj xxup fmi dijo") == "FMI dijo"


CORPUS = [
    "El presidente de la República habló con los periodistas en Palacio.",
    "La ONU y el FMI publicaron su informe sobre México y España.",
    "¿Qué opina usted, señora diputada? ¡Es una vergüenza!",
    "The President spoke to reporters at the White House on Monday.",
    "The UN and the IMF published their report on Brazil and Spain.",
    "What do you think, Senator? It is a disgrace!",
] * 40 + ["Write to @prensa or #senado."]  # rare, but ASCII: kept


@pytest.fixture(scope="module")
def trained():
    # The SentencePiece model, trained once; each test builds its layer
    # (clearing the Keras session drops TensorFlow's tokenizer resource).
    return SubwordTokenizer.from_corpus(
        CORPUS, vocabulary_size=350, byte_fallback=True
    ).model


@pytest.fixture
def tokenizer(trained):
    return SubwordTokenizer(trained, normalization="ulmfit")


def test_byte_fallback_leaves_no_unknown_tokens(tokenizer):
    # Emoji, @handles, #tags, quotes and letters the corpus never had.
    texts = [
        "@user jajajaja 😂😂 #México «genial» ẞ Ωmega",
        '"Quoted" [brackets] {braces} ~tilde~ 100% $5',
    ]
    ids = tokenizer.encode(texts)
    assert all(1 not in row for row in ids)
    pieces = {tokenizer.vocabulary[i] for row in ids for i in row}
    assert "<0xF0>" in pieces  # the emoji, spelled as UTF-8 bytes
    assert "@" in {p.lstrip("\u2581") for p in pieces}  # a piece of its own


def test_markers_are_single_pieces_and_case_is_shared(tokenizer):
    vocabulary = tokenizer.vocabulary
    upper, lower = tokenizer.encode(["Presidente", "presidente"])
    assert vocabulary[upper[0]] == "\u2581xxmaj"
    assert upper[1:] == lower
    (caps,) = tokenizer.encode(["ONU"])
    assert vocabulary[caps[0]] == "\u2581xxup"


@pytest.mark.parametrize(
    "text",
    [
        "¿Qué opina usted, señora diputada? ¡Es una vergüenza!",
        "The UN and the IMF published their report on Brazil.",
    ],
    ids=["es", "en"],
)
def test_tokenizer_round_trips_cased_text(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode([text])) == [text]


def test_normalizing_tokenizer_saves_and_runs_in_the_graph(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.normalization == "ulmfit"
    texts = tf.constant(["La ONU<br />dijo: ¡NO!!!!!"])
    np.testing.assert_array_equal(
        tf.function(loaded)(texts).to_tensor().numpy(),
        tokenizer(texts).to_tensor().numpy(),
    )
    # A tokenizer without rules reads text as it is.
    raw = SubwordTokenizer.from_corpus(
        CORPUS, vocabulary_size=100, normalization=None
    )
    assert raw.normalization is None
    assert "xxmaj" not in "".join(raw.vocabulary)
