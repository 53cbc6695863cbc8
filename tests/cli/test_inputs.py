"""What the commands read (`keras_tl/cli/inputs.py`): image folders,
TFDS names, labelled tables, corpora."""

import gzip
import os
import time

import numpy as np
import pytest

from keras_tl import cli, data
from tests.conftest import encoded_image, write_images


def test_bad_image_data_exits_2_before_writing_anything(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--backbone", "mobilenet_v2_035", "--weights", "none"]
    assert cli.main(args + ["--data", "missing"]) == 2
    assert "Data not found: --data missing" in capsys.readouterr().err
    assert cli.main(args + ["--data", ".", "--test", "gone"]) == 2
    assert "Data not found: --test gone" in capsys.readouterr().err
    # Options of text files are refused for an image folder, not ignored.
    photos = write_images(tmp_path / "pics", n=2)
    assert cli.main(args + ["--data", photos, "--labels", "x.txt",
                            "--text-column", "frase"]) == 2  # fmt: skip
    assert "--labels, --text-column are for text files; --data " in (
        capsys.readouterr().err
    )
    assert cli.main(args + ["--data", photos, "--encoding", "cp1252"]) == 2
    assert "--encoding is for text files" in capsys.readouterr().err
    assert cli.main(args + ["--data", photos, "--encoding", "klingon"]) == 2
    assert "argument --encoding: Unknown text encoding 'klingon'" in (
        capsys.readouterr().err
    )
    # A labels file is for a .txt of texts; a table has its label column.
    table = tmp_path / "t.csv"
    table.write_text("text,label\nhola,a\n")
    with pytest.raises(ValueError, match=r"Leave out the labels file"):
        from keras_tl.cli.inputs import read_texts
        from keras_tl.cli.parser import build_parser

        parsed = build_parser().parse_args(
            ["train", "--data", str(table), "--backbone", "awd_lstm"]
        )
        read_texts(str(table), "labels.txt", parsed)
    write_images(tmp_path / "photos", n=2)
    (tmp_path / "photos" / "birds").mkdir()
    (tmp_path / "photos" / "birds" / "notes.txt").write_text("no images")
    assert cli.main(args + ["--data", "photos"]) == 2
    err = capsys.readouterr().err
    assert "photos/birds has no images" in err and ".png" in err
    write_images(tmp_path / "valid", classes=("cats", "horses"), n=1)
    (tmp_path / "photos" / "birds" / "notes.txt").unlink()
    (tmp_path / "photos" / "birds").rmdir()
    assert cli.main(args + ["--data", "photos", "--validation", "valid"]) == 2
    assert "the subfolders must be the same" in capsys.readouterr().err
    assert not os.path.exists("runs")


def test_validation_split_holds_out_other_files_of_every_class(tmp_path):
    folder = write_images(tmp_path / "photos", n=10, size=8)
    options = dict(image_size=8, batch_size=100, validation_split=0.2, seed=3)
    train, _ = data.image_folder(folder, subset="training", **options)
    valid, _ = data.image_folder(
        folder, subset="validation", shuffle=False, **options
    )
    seen = [
        {tuple(x.numpy().ravel()[:12]) for x in next(iter(d))[0]}
        for d in (train, valid)
    ]
    assert len(seen[0]) == 16 and len(seen[1]) == 4
    assert not seen[0] & seen[1]
    valid_labels = next(iter(valid))[1].numpy()
    assert sorted(set(valid_labels)) == [0, 1]  # not one class's files


def test_tfds_sources_need_a_split_and_no_validation_split(
    tmp_path, image_module_path, capsys
):
    import tensorflow_datasets as tfds

    argv = [
        "train",
        "--data", "tfds:tf_flowers",
        "--backbone", f"hub:{image_module_path}",
        "--run-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with tfds.testing.mock_data(num_examples=4):
        assert cli.main(argv + ["--validation", "tfds:tf_flowers"]) == 2
        assert "need the split" in capsys.readouterr().err
        assert cli.main(argv + ["--validation-split", "0.2"]) == 2
        assert "tfds:NAME:train[80%:]" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_image_folder_loader(tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        data.image_class_folders(write_images(tmp_path / "a", ("one",), 1))
    folder = write_images(tmp_path / "b", n=3, size=40)
    dataset, names = data.image_folder(
        folder, image_size=24, batch_size=4, shuffle=False
    )
    assert names == ["cats", "dogs"]
    pixels, labels = next(iter(dataset))
    assert pixels.shape == (4, 24, 24, 3) and pixels.dtype == "float32"
    assert labels.numpy().tolist() == [0, 0, 0, 1]
    assert 100 < float(pixels.numpy().max()) <= 255  # raw pixels, not [0, 1]

    # Shuffled, each epoch's order comes from the seed and the epoch (not
    # from a count of passes a new process starts again), and the images
    # are read as Keras reads them.
    def images_of(dataset):  # each image by its pixel sum, and its label
        return [
            (round(float(x.sum()), 2), int(y))
            for xs, ys in dataset
            for x, y in zip(xs.numpy(), ys.numpy(), strict=True)
        ]

    shuffled, _ = data.image_folder(folder, image_size=24, batch_size=4)
    passes = [images_of(shuffled) for _ in range(4)]
    assert len({tuple(p) for p in passes}) > 1  # reshuffled
    resumed, _ = data.image_folder(folder, image_size=24, batch_size=4)
    resumed.epoch_order.epoch = 3
    assert images_of(resumed) == passes[3]  # 1 order in 720 by chance
    by_keras = np.concatenate([x.numpy() for x, _ in dataset])
    keras_labels = np.concatenate([y.numpy() for _, y in dataset])
    ours, _ = data.image_folder(folder, image_size=24, batch_size=6, seed=5)
    pixels, labels = next(iter(ours))
    order = np.argsort(
        [np.abs(by_keras - p).sum((1, 2, 3)).argmin() for p in pixels.numpy()]
    )
    np.testing.assert_array_equal(pixels.numpy()[order], by_keras)
    np.testing.assert_array_equal(labels.numpy()[order], keras_labels)
    assert labels.dtype == "int32" and int(ours.cardinality()) == 1
    # No seed: a random one, as Keras' loaders take it.
    assert len(images_of(data.image_folder(folder, seed=None)[0])) == 6
    # Classes that share subfolders of their own are classes, not splits.
    for year in ("2019", "2020"):
        write_images(tmp_path / "years" / "cats" / year, ("x",), 1)
        write_images(tmp_path / "years" / "dogs" / year, ("x",), 1)
    assert data.image_class_folders(tmp_path / "years") == ["cats", "dogs"]
    # Class folders that are links (to images kept elsewhere) are read, as
    # Keras reads them; a link deeper down is not followed (here a loop).
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in ("cats", "dogs"):
        (linked / name).symlink_to(tmp_path / "b" / name)
    (linked / "dogs" / "loop").symlink_to(linked)
    assert data.image_class_folders(linked) == ["cats", "dogs"]
    assert len(data.image_files(linked)) == 6
    dataset, _ = data.image_folder(linked, image_size=24, shuffle=False)
    assert sum(len(y) for _, y in dataset) == 6
    (linked / "dogs" / "loop").unlink()
    # Formats Keras skips are named, not dropped without a word.
    (tmp_path / "b" / "dogs" / "photo.webp").write_bytes(b"RIFF")
    with pytest.warns(UserWarning, match=r"1 image\(s\) in .* are not read"):
        data.image_class_folders(folder)
    with pytest.warns(UserWarning, match=r"linked are not read .*webp"):
        data.image_class_folders(linked)  # in a linked class folder too


@pytest.mark.parametrize(
    "name, content, damaged",
    [
        # Whole files that end unusually: decoded to be sure, then kept.
        ("trailer.jpg", encoded_image("JPEG") + b"MotionPhoto" * 300, False),
        ("no_trailer.gif", encoded_image("GIF")[:-1], False),
        # Cut off: refused by name before training.
        ("cut.jpg", encoded_image("JPEG")[:-200], True),
        ("cut.png", encoded_image("PNG")[:-300], True),
        ("cut.gif", encoded_image("GIF")[:-300], True),
        ("cut.bmp", encoded_image("BMP")[:-300], True),
        ("tiny.bmp", b"BM", True),
    ],
)
def test_image_files_cut_off_are_found_and_whole_ones_kept(
    tmp_path, name, content, damaged
):
    folder = write_images(tmp_path / "photos", n=2, size=16)
    (tmp_path / "photos" / "cats" / name).write_bytes(content)
    if not damaged:
        assert data.image_class_folders(folder) == ["cats", "dogs"]
        return
    with pytest.raises(ValueError, match=f"{name} .damaged or cut off"):
        data.image_class_folders(folder)


def test_tfds_loader_offline_and_mocked():
    import tensorflow_datasets as tfds

    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot be reached"):
        data.tfds_examples("tf_flowers", timeout=1.0)
    assert time.monotonic() - started < 5
    with pytest.raises(ValueError, match="Unknown TFDS dataset"):
        data.tfds_examples("no_such_dataset")
    with tfds.testing.mock_data(num_examples=3):
        flowers, names = data.tfds_examples("tf_flowers")
        image, label = next(iter(flowers))
        assert image.dtype == "uint8" and image.shape[-1] == 3
        assert len(names) == 5 and 0 <= int(label) < 5
        reviews, names = data.tfds_examples("imdb_reviews", "test")
        text, _ = next(iter(reviews))
        assert text.dtype == "string" and names == ["neg", "pos"]


def test_read_labelled_formats_and_errors(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text('frase,clase\n"¡Hola, qué tal!",pos\nadiós,neg\n')
    assert data.read_labelled(str(table), None, "frase", "clase") == (
        ["¡Hola, qué tal!", "adiós"],
        ["pos", "neg"],
    )
    rows = tmp_path / "r.jsonl.gz"
    with gzip.open(rows, "wt", encoding="utf-8") as f:
        f.write('{"text": "piña", "label": 2}\n\n{"text": "ñu", "label": 0}\n')
    assert data.read_labelled(str(rows)) == (["piña", "ñu"], ["2", "0"])
    bom = tmp_path / "excel.csv"
    bom.write_bytes("text,label\n¿sí?,1\n".encode("utf-8-sig"))
    assert data.read_labelled(str(bom)) == (["¿sí?"], ["1"])
    empty = tmp_path / "e.csv"
    empty.write_text("text,label\n")
    with pytest.raises(ValueError, match="has no rows"):
        data.read_labelled(str(empty))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9,x\n")
    with pytest.raises(ValueError, match="not valid utf-8"):
        data.read_labelled(str(latin))
    # Read as its encoding: Excel's cp1252 keeps the euro sign and curly
    # quotes, which Latin-1 would turn into control characters.
    excel = tmp_path / "excel1252.csv"
    excel.write_bytes(
        "text,label\n\u201cAdiós\u201d 5 €,neg\n".encode("cp1252")
    )
    assert data.read_labelled(str(excel), encoding="cp1252") == (
        ["\u201cAdiós\u201d 5 €"],
        ["neg"],
    )
    lines = tmp_path / "textos.txt"
    lines.write_bytes("año\nniño\n".encode("latin-1"))
    (tmp_path / "clases.txt").write_bytes("sí\nno\n".encode("latin-1"))
    assert data.read_labelled(
        str(lines), str(tmp_path / "clases.txt"), encoding="latin-1"
    ) == (["año", "niño"], ["sí", "no"])
    assert data.read_unlabelled(str(lines), encoding="latin-1") == [
        "año",
        "niño",
    ]
    rows = tmp_path / "latin.jsonl.gz"
    with gzip.open(rows, "wt", encoding="latin-1") as f:
        f.write('{"text": "pi\u00f1a", "label": "a"}\n')
    assert data.read_corpus([str(rows)], encoding="latin-1") == ["piña"]
    with pytest.raises(ValueError, match=r"It is not UTF-8 either"):
        data.read_unlabelled(str(excel), encoding="ascii")
    for name in ["klingon", "base64", None]:  # unknown, not text, not a name
        with pytest.raises(ValueError, match="Unknown text encoding"):
            data.read_labelled(str(excel), encoding=name)
    xml = tmp_path / "x.xml"
    xml.write_text("<rows/>")
    with pytest.raises(ValueError, match="Unknown data format"):
        data.read_labelled(str(xml))


def test_read_labelled_refuses_rows_that_would_make_wrong_classes(tmp_path):
    def refused(name, content, match):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=match):
            data.read_labelled(str(path))

    # An unquoted comma would have made " no me gustó" a class.
    refused(
        "comma.csv",
        "text,label\nbuena,pos\nHorrible, no me gustó,neg\n",
        r"comma.csv, line 3: more fields than the header's 2 "
        r"\(\['neg'\] left over\)",
    )
    refused("short.csv", "text,label\nsolo texto\n", "line 2: no value for "
            "'label' \\(fewer fields than the header\\)")  # fmt: skip
    refused(
        "quote.tsv",
        'text\tlabel\n"Horrible\tneg\nbuena\tpos\n',
        r"quote.tsv, line 2: no value for 'label' \(fewer fields than the "
        r"header, and a text that runs over several lines: a quote",
    )
    refused(
        "blank.csv",
        "text,label\nbuena,pos\nsin etiqueta,\nmala,  \nfea,neg\n",
        r"2 of 4 labels are empty \(lines 3, 4\)",
    )
    refused(
        "null.jsonl",
        '{"text": "hola", "label": null}\n',
        r"null.jsonl, line 1: no value for 'label' \(null\)",
    )
    refused(
        "number.jsonl",
        '{"text": "hola", "label": "a"}\n{"text": 3, "label": "b"}\n',
        r"number.jsonl, line 2: 'text' is not a string. Received: 3",
    )
    refused(
        "broken.jsonl",
        '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n',
        r"broken.jsonl, line 2: not valid JSON \(Expecting property name",
    )
    texts = tmp_path / "t.txt"
    texts.write_text("uno\ndos\ntres\n", encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("pos\n\nneg\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 of 3 labels are empty \(line 2\)"):
        data.read_labelled(str(texts), str(labels))
    # JSON numbers name one class however they are written.
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text(
        '{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n'
    )
    assert data.read_labelled(str(numbers))[1] == ["1", "1"]
    # Spaces around a label are not part of it.
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("text,label\nbuena,pos \nmala, neg\n", encoding="utf-8")
    assert data.read_labelled(str(spaced))[1] == ["pos", "neg"]
    # Spreadsheets in Spanish locales separate with semicolons.
    excel = tmp_path / "excel_es.csv"
    excel.write_bytes(
        'texto;etiqueta\n"Costó 3,50 €; caro";neg\n¡Genial!;pos\n'.encode(
            "utf-8-sig"
        )
    )
    assert data.read_labelled(str(excel), None, "texto", "etiqueta") == (
        ["Costó 3,50 €; caro", "¡Genial!"],
        ["neg", "pos"],
    )
    # And tabs, in a tab-separated file saved as .csv.
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text("id\ttext\tlabel\n1\tCostó 3,50; caro\tneg\n")
    assert data.read_labelled(str(tabbed)) == (["Costó 3,50; caro"], ["neg"])
    # Also where a column's name holds a comma: the columns asked for decide.
    priced = tmp_path / "priced.csv"
    priced.write_text("texto;precio, €;etiqueta\nbarato;3,50;pos\n")
    assert data.read_labelled(str(priced), None, "texto", "etiqueta") == (
        ["barato"],
        ["pos"],
    )


def test_gutenberg_markers_are_stripped(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(
        "licence\n*** START OF X ***\nEn un lugar\n"
        "*** END OF X ***\nmore licence\n",
        encoding="utf-8",
    )
    assert data.read_corpus([str(book)]) == ["En un lugar"]


def test_read_corpus_reads_tables_by_their_text_column(tmp_path):
    table = tmp_path / "corpus.csv"
    table.write_text('text,label\n"Hola, ¿qué tal?",pos\nadiós,neg\n')
    # The header and the labels are not text to learn.
    assert data.read_corpus([str(table)]) == ["Hola, ¿qué tal?", "adiós"]
    other = tmp_path / "other.tsv"
    other.write_text("frase\tclase\nhola\tpos\n")
    with pytest.raises(ValueError, match=r"other.tsv has no column 'text'"):
        data.read_corpus([str(other)])
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text('{"text": "uno"}\n5\n')
    with pytest.raises(ValueError, match=r"numbers.jsonl, line 2: expected"):
        data.read_corpus([str(numbers)])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"empty.txt holds no text"):
        data.read_corpus([str(table), str(empty)])


def test_read_corpus_reads_the_named_column(tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text("review,label\nbuena,pos\nmala,neg\n")
    lines = tmp_path / "reviews.jsonl"
    lines.write_text('{"review": "otra"}\n{"review": 3}\n')
    assert data.read_corpus([str(table)], text_column="review") == [
        "buena",
        "mala",
    ]
    with pytest.raises(
        ValueError, match=r"jsonl, line 2: 'review' is not a string"
    ):
        data.read_corpus([str(lines)], text_column="review")
    with pytest.raises(ValueError, match=r"has no column 'text'.*'review'"):
        data.read_corpus([str(table)])


def test_one_column_tables_keep_their_commas(tmp_path):
    # A one-column sheet saved by a spreadsheet: nothing in its header says
    # which separator, and its texts' commas are not quoted.
    sheet = tmp_path / "frases.csv"
    sheet.write_text('text\nHola, qué tal\n"Dijo: ""sí, claro"""\n')
    expected = ["Hola, qué tal", 'Dijo: "sí, claro"']
    assert data.read_unlabelled(str(sheet)) == expected
    assert data.read_corpus([str(sheet)]) == expected
    sheet_tsv = tmp_path / "frases.tsv"
    sheet_tsv.write_text("text\nuna\tcon tabulador\n")
    assert data.read_unlabelled(str(sheet_tsv)) == ["una\tcon tabulador"]


def test_gzipped_tables_are_read_by_column(tmp_path):
    table = tmp_path / "corpus.csv.gz"
    with gzip.open(table, "wt", encoding="utf-8") as f:
        f.write("text,label\nhola amigo,pos\nadiós,neg\n")
    # Its header and labels are not text to learn.
    assert data.read_corpus([str(table)]) == ["hola amigo", "adiós"]
    assert data.read_labelled(str(table)) == (
        ["hola amigo", "adiós"],
        ["pos", "neg"],
    )
    assert data.read_unlabelled(str(table)) == ["hola amigo", "adiós"]


def test_semicolon_header_names_the_column_really_missing(tmp_path):
    sheet = tmp_path / "hoja.csv"
    sheet.write_text("id;text;etiqueta\n1;buena;pos\n")
    with pytest.raises(ValueError) as error:
        data.read_labelled(str(sheet))
    message = str(error.value)
    assert "has no column 'label'" in message
    assert "['etiqueta', 'id', 'text']" in message
    assert data.read_labelled(str(sheet), None, "text", "etiqueta") == (
        ["buena"],
        ["pos"],
    )


def test_errors_name_the_line_an_editor_shows(tmp_path):
    # Blank lines and a text over two lines come before the bad row.
    table = tmp_path / "t.csv"
    table.write_text('text,label\n\n"dos\nlíneas",pos\n\nsin etiqueta,\n')
    with pytest.raises(ValueError, match=r"1 of 2 labels are empty \(line 6\)"):
        data.read_labelled(str(table))
    rows = tmp_path / "t.jsonl"
    rows.write_text(
        '\n\n{"text": "a", "label": "x"}\n\n{"text": "", "label": 1}'
    )
    with pytest.raises(ValueError, match=r"1 of 2 texts are empty \(line 5\)"):
        data.read_labelled(str(rows))
    # A bad byte far into a file: the file's byte and line, not the
    # decoder's block's.
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\n" + b"bien,pos\n" * 5000 + b"caf\xe9,neg\n")
    with pytest.raises(
        ValueError, match=r"byte 45014 \(line 5002\).*iconv -f cp1252"
    ):
        data.read_labelled(str(latin))


def test_predict_inputs_any_text_file_but_not_other_formats(tmp_path):
    plain = tmp_path / "reseñas"  # no extension: one text a line
    plain.write_text("buena, muy buena\n\nmala\n")
    assert data.read_unlabelled(str(plain)) == ["buena, muy buena", "mala"]
    sheet = tmp_path / "datos.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match=r"Cannot read .*datos.xlsx: save it"):
        data.read_unlabelled(str(sheet))
    with pytest.raises(ValueError, match=r"Cannot read .*datos.xlsx"):
        data.read_corpus([str(sheet)])


def test_a_resumed_text_run_keeps_the_class_order_it_trained_with(
    tmp_path, text_module_path
):
    from keras_tl.cli.inputs import Task
    from keras_tl.cli.parser import build_parser, resolve_model_options

    table = tmp_path / "reviews.csv"
    rows = [
        f"review {i},{label}" for i, label in enumerate(["1", "2", "10"] * 2)
    ]
    table.write_text("text,label\n" + "\n".join(rows), encoding="utf-8")
    argv = ["train", "--data", str(table), "--validation", str(table),
            "--backbone", f"hub:{text_module_path}"]  # fmt: skip
    args = resolve_model_options(build_parser().parse_args(argv))
    task = Task(args)
    assert task.label_names == ["1", "2", "10"]

    def validation_ids():
        return [int(y) for _, batch in task.validation for y in batch]

    assert validation_ids() == [0, 1, 2, 0, 1, 2]
    # A run trained when labels read from files sorted as text.
    task.keep_label_order(["1", "10", "2"])
    assert task.label_names == ["1", "10", "2"]
    assert validation_ids() == [0, 2, 1, 0, 2, 1]
    with pytest.raises(
        ValueError, match=r"trained on the labels \['1', '2', '3'\]"
    ):
        task.keep_label_order(["1", "2", "3"])


def test_max_words_cuts_a_txt_file_at_a_line(tmp_path):
    book = tmp_path / "libro.txt"
    book.write_text("uno dos tres\ncuatro cinco\nseis siete ocho\nnueve\n")
    # The line that reaches 4 words is the last kept; a .txt file is one
    # document, which before was read whole whatever the limit.
    assert data.read_corpus([str(book)], max_words=4) == [
        "uno dos tres\ncuatro cinco"
    ]
    assert data.read_corpus([str(book)], max_words=3) == ["uno dos tres"]
    more = tmp_path / "mas.txt"
    more.write_text("diez once\ndoce\n")
    # What the first file leaves of the limit is taken from the next.
    assert data.read_corpus([str(book), str(more)], max_words=10) == [
        "uno dos tres\ncuatro cinco\nseis siete ocho\nnueve\n",
        "diez once",
    ]


def test_tfds_images_and_hub_texts_read_each_epoch_in_its_own_order():
    """`Dataset.shuffle` counts passes from 0 in each process, so a run
    resumed at epoch k re-read epoch 1's order; these read epoch k's."""
    import types

    import tensorflow_datasets as tfds

    from keras_tl.cli.inputs import Task, images

    def labels_of(dataset):
        return np.concatenate([y for _, y in dataset.as_numpy_iterator()])

    args = types.SimpleNamespace(seed=5, batch_size=4)
    with tfds.testing.mock_data(num_examples=12):
        flowers, _ = images("tfds:tf_flowers", args, 8, split="train")
        passes = [labels_of(flowers) for _ in range(4)]
        resumed, _ = images("tfds:tf_flowers", args, 8, split="train")
        resumed.epoch_order.epoch = 3
        assert (labels_of(resumed) == passes[3]).all()
        unshuffled, _ = images(
            "tfds:tf_flowers", args, 8, split="train", shuffle=False
        )
        assert unshuffled.epoch_order is None
    assert int(flowers.cardinality()) == 3
    assert all(sorted(p) == sorted(passes[0]) for p in passes)

    task = Task.__new__(Task)  # only what text_dataset reads
    task.args, task.tokenizer = args, None
    task.label_names = [str(i) for i in range(10)]
    texts, labels = [f"t{i}" for i in range(10)], [str(i) for i in range(10)]
    reviews = task.text_dataset(texts, labels, shuffle=True)
    passes = [labels_of(reviews) for _ in range(4)]
    assert len({tuple(p) for p in passes}) == 4  # reshuffled
    assert all(sorted(p) == list(range(10)) for p in passes)
    resumed = task.text_dataset(texts, labels, shuffle=True)
    resumed.epoch_order.epoch = 2
    assert (labels_of(resumed) == passes[2]).all()
    assert int(reviews.cardinality()) == 3


def test_files_whose_bytes_say_their_encoding(tmp_path):
    import warnings

    import keras_tl

    # Excel's "Unicode text": UTF-16 with its byte-order mark, read as such
    # whatever --encoding says (the mark is unambiguous).
    sheet = tmp_path / "unicode.tsv"
    sheet.write_text("text\tlabel\n¿Qué tal?\tbien\n", encoding="utf-16")
    for encoding in ("utf-8", "cp1252"):
        assert data.read_labelled(str(sheet), encoding=encoding) == (
            ["¿Qué tal?"],
            ["bien"],
        )
    lines = tmp_path / "lines.txt"
    lines.write_text("Qué bien\nQué mal\n", encoding="utf-16")
    assert data.read_unlabelled(str(lines)) == ["Qué bien", "Qué mal"]
    # UTF-32's mark starts with UTF-16's: read as UTF-32, asked for or not.
    for encoding in ("utf-8", "utf-32"):
        lines.write_text("hola mundo\n", encoding="utf-32")
        assert data.read_corpus([str(lines)], encoding=encoding) == [
            "hola mundo\n"
        ]
    # A damaged UTF-16 file is not told to add the mark it has.
    sheet.write_bytes("text\tlabel\nqué\tbien\n".encode("utf-16") + b"\x00")
    with pytest.raises(ValueError, match="not valid utf-16") as error:
        data.read_labelled(str(sheet))
    assert "byte-order mark" not in str(error.value)
    assert "UTF-8 either" not in str(error.value)
    # Without the mark, the NUL bytes give it away.
    lines.write_bytes("Qué bien\n".encode("utf-16-le"))
    with pytest.raises(ValueError, match="--encoding utf-16-le"):
        data.read_unlabelled(str(lines))
    # One --encoding for every file of a command: a UTF-8 validation file
    # beside a cp1252 training file is read as UTF-8, with a warning
    # (cp1252 read "é" saved as UTF-8 as "Ã©", without an error).
    valid = tmp_path / "valid.csv"
    valid.write_text('text,label\n"¿Está bien, señor?",sí\n', encoding="utf-8")
    with pytest.warns(keras_tl.KerasTLWarning, match="valid.csv is UTF-8"):
        assert data.read_labelled(str(valid), encoding="cp1252") == (
            ["¿Está bien, señor?"],
            ["sí"],
        )
    plain = tmp_path / "plain.csv"  # ASCII is both: no warning
    plain.write_text("text,label\nok,yes\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.read_labelled(str(plain), encoding="cp1252") == (
            ["ok"],
            ["yes"],
        )
    # A workbook renamed .csv: said so, not "invalid UTF-8 at byte 10".
    workbook = tmp_path / "notas.csv"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)))
    for encoding in ("utf-8", "latin-1"):
        with pytest.raises(ValueError, match="notas.csv is a zip file"):
            data.read_labelled(str(workbook), encoding=encoding)
