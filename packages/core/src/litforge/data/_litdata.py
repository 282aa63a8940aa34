"""litdata, imported once for the streamed path (``prepare``, ``stream``).

litdata asks the package index for a newer version of itself whenever a dataset is built (up to
30 s on a machine without internet, once per process): nothing a user can act on. Its documented
switch, ``LITDATA_DISABLE_VERSION_CHECK``, is read when litdata is first imported; a user who
sets it keeps their value.
"""

import os

os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")

from litdata import StreamingDataLoader, StreamingDataset
from litdata.streaming.writer import BinaryWriter

__all__ = ["BinaryWriter", "StreamingDataLoader", "StreamingDataset"]
