"""Models and their hidden states: loading (hub, local, the embedded GGUF model), the stopped forward, pooling,
extraction and the state cache."""
