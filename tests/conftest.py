import os
import sys

import pytest

# Triton's interpreter is the only way to run the kernel without a GPU; it must be set before triton is imported.
try:
    import torch
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:
    pass
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run no slower on one thread, and on a shared 2-core CPU a second (spinning) OpenMP thread made
    these modules 4-10x slower. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`; the
    thread count is restored afterwards for the other modules."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
