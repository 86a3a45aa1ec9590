"""`rlrun-prepare`: text in, token shards out (docs/prepare.md).

The stages, in order, each optional: read the inputs (`inputs`), normalise (`normalize`),
drop exact duplicates (`exact`), drop near duplicates with MinHash LSH (`neardup`), apply
Gopher-style quality filters (`filters`), split train/validation by a hash of each document
(`split`), train or load a tokenizer on the train split (`tokenizer`) and encode to token
shards (`shards`). `stagelog` writes every document's fate to `stages.parquet`; `pipeline`
runs the stages into an output dir that is either complete or untouched; `cli` is the
console script. The reading side, for training, is `rlrun.data.tokens`.

Torch-free: nothing here imports torch, and the heavy libraries (`tokenizers`, `rensa`,
`duckdb`) are imported where a stage needs them.
"""
