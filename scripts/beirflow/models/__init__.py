"""Models on a device: loading (records, precision, devices), the text encoder, batching to a token budget, the allocator's settings."""
