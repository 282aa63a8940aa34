"""Data held in memory and batched on the device, for any task; images are a layer on top.

Arrays / ImageArrays     named tensors of any dtype and shape (images: uint8 N x C x H x W)
split_pool               train / val / test from one pool, random or stratified, seeded
DeviceLoader             seeded, DDP-sharded batches built into the task's Example
ArrayDataModule          a task's data: load() -> Arrays; the TaskData contract
ImageDataModule          + uint8 -> normalised float, shifts and flips on the device, pictures
"""

from litforge.data.arrays import Arrays, ImageArrays
from litforge.data.augment import ImageTransform
from litforge.data.device import DeviceLoader
from litforge.data.images import ImageDataModule
from litforge.data.module import ArrayDataModule
from litforge.data.split import split_pool

__all__ = [
    "ArrayDataModule",
    "Arrays",
    "DeviceLoader",
    "ImageArrays",
    "ImageDataModule",
    "ImageTransform",
    "split_pool",
]
