"""Text models: the tokenizer a sidecar declares, documents split into words, and what is measured on them."""
