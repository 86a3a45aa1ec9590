"""`rlrun-drift RUN_DIR current=PATH [reference=PATH]`: does new data still look like what a
text classifier (`algo=text_classifier`) or a character LM (`algo=lm`) was trained on?
(docs/drift.md)

Evidently runs the tests; rlrun supplies the columns it tests, read through the run's own
config, readers and model:

- `data`: the documents of both sides: `current=` (and `reference=`) in any format the run's
  env reads, or by default the run's own training split;
- `columns`: the text's descriptors (length in characters and in words, out-of-vocabulary
  share against the run's own vocabulary, non-letter share) and the model's columns
  (predicted label and its probability for the classifier, per-document perplexity for the
  LM); true labels where the current data has them;
- `engine`: Evidently's `DataDriftPreset` over those columns (its stat test per column by
  size and type, its dataset-drift rule at a drift share of 0.5, `method=` and `threshold=`
  overrides), its HTML report;
- `summary`: `drift.json` and the table on stdout;
- `check`: the whole command, `cli`: its arguments and errors.
"""
