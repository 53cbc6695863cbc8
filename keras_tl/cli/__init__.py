"""The `keras-tl` command (also `python -m keras_tl`).

    keras-tl list-backbones "efficientnet*"
    keras-tl train --data photos/train --validation photos/valid \\
        --backbone mobilenet_v2 --export saved_models/photos
    keras-tl lm pretrain --corpus novels.jsonl.gz --output saved_models/es_lm
    keras-tl lm finetune --encoder saved_models/es_lm --corpus tweets.txt \\
        --output saved_models/es_lm_tweets
    keras-tl ulmfit --data train.csv --validation valid.csv \\
        --encoder saved_models/es_lm --export saved_models/es_clf
    keras-tl lr-find --data photos/train --backbone mobilenet_v2
    keras-tl evaluate --model runs/photos --data photos/test
    keras-tl predict --model saved_models/photos cat.jpg dog.png
    keras-tl export --model runs/photos --output saved_models/photos

Every option can also come from a YAML file (`--config run.yaml`, keys
named like the options: `batch_size: 16` or `batch-size: 16`); options on
the command line win. Training commands write a run folder (see
`keras_tl.runs`) with the resolved configuration, and `train` / `ulmfit`
resume an interrupted run when the same command is run again.

User errors (missing files, bad values, undecodable text, unknown options)
print a message that says how to fix them to stderr and exit with code 2.
"""

from keras_tl.cli.parser import apply_config, build_parser, main

__all__ = ["apply_config", "build_parser", "main"]
