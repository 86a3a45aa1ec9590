"""Stage 5: the train/validation split, by a hash of each document.

A document goes to validation when the first 8 bytes of its text hash, read as a fraction of
2**64, fall below `val_fraction`. The choice depends on the document alone, so adding
documents to a corpus never moves an old one to the other split (and a document that occurs
twice cannot be in both).
"""

from __future__ import annotations


def split_of(text_hash: bytes, val_fraction: float) -> str:
    """'val' or 'train' for a document with this `exact.text_hash`."""
    return "val" if int.from_bytes(text_hash[:8], "big") < val_fraction * 2.0**64 else "train"
