"""Custom attention kernels. Imported lazily so that `import kernels` does not need Triton (an optional dependency)
and so that TRITON_INTERPRET can still be set before Triton is first imported."""


def __getattr__(name):
    if name == "windowed_attention":
        from kernels.triton_swa import windowed_attention
        return windowed_attention
    raise AttributeError(f"module 'kernels' has no attribute {name!r}")
