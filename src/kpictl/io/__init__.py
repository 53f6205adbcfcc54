"""Reading logs into canonical frames: formats, byte-level guards, the JSONL cache, prices."""
