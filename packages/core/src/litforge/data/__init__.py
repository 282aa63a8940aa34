"""Data for image tasks: in-memory uint8 arrays, image-folder reading, device-side batches."""

from litforge.data.arrays import ImageArrays
from litforge.data.device import DeviceLoader
from litforge.data.module import ImageDataModule

__all__ = ["DeviceLoader", "ImageArrays", "ImageDataModule"]
