import torch

from litforge.data import DeviceLoader, ImageArrays, ImageTransform
from litforge.data.augment import flip, random_translate, translate
from litforge.tasks.structs import ClassificationExample


def known_image() -> torch.Tensor:
    return torch.arange(1 * 1 * 4 * 5, dtype=torch.float32).view(1, 1, 4, 5)


def test_translate_exact_with_reflection():
    img = known_image()  # rows 0..3, cols 0..4, value = 5*r + c
    out = translate(img, torch.tensor([[1, 0]]), pad=2)  # shift down by one row
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out[0, 0, 1:], img[0, 0, :3])
    assert torch.equal(out[0, 0, 0], img[0, 0, 1])  # reflected: row -1 is row 1
    out = translate(img, torch.tensor([[0, -2]]), pad=2)  # shift left by two columns
    assert torch.equal(out[0, 0, :, :3], img[0, 0, :, 2:])
    assert torch.equal(out[0, 0, :, 3], img[0, 0, :, 3])  # col 5 reflects to col 3
    assert torch.equal(out[0, 0, :, 4], img[0, 0, :, 2])  # col 6 reflects to col 2
    assert torch.equal(translate(img, torch.tensor([[0, 0]]), pad=2), img)


def test_flip_exact_and_random_translate_bounds():
    imgs = torch.cat([known_image(), known_image()])
    out = flip(imgs, torch.tensor([True, False]))
    assert torch.equal(out[0], imgs[0].flip(-1)) and torch.equal(out[1], imgs[1])
    many = known_image().repeat(200, 1, 1, 1)
    moved = random_translate(many, 1, torch.Generator().manual_seed(0))
    # every output is one of the 9 shifts of the input
    shifts = [
        translate(known_image(), torch.tensor([[dy, dx]]), 1)[0]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    ]
    seen = {next(i for i, s in enumerate(shifts) if torch.equal(m, s)) for m in moved}
    assert seen == set(range(9))


def build(index, fields) -> ClassificationExample:
    return ClassificationExample(index=index, **fields)


def loader(**kw) -> DeviceLoader:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    transform = ImageTransform(torch.zeros(3), torch.ones(3))
    arrays = ImageArrays(images, torch.arange(10))
    return DeviceLoader(arrays, build, batch_size=3, transform=transform, **kw)


def test_device_loader_order_sharding_and_normalisation():
    plain = list(loader())
    assert [b.index.tolist() for b in plain] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert torch.allclose(plain[0].image[1], torch.full((3, 4, 4), 1 / 255))
    epoch = [0]
    train = loader(shuffle=True, drop_last=True, seed=3, epoch=lambda: epoch[0])
    first = torch.cat([b.index for b in train])
    again = torch.cat([b.index for b in train])
    assert torch.equal(first, again)  # the order depends on (seed, epoch) only
    epoch[0] = 1
    assert not torch.equal(first, torch.cat([b.index for b in train]))
    shards = [
        torch.cat([b.index for b in loader(shuffle=True, seed=1, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    evals = [torch.cat([b.index for b in loader(rank=r, world_size=3)]) for r in (0, 1, 2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(10))  # exact, no padding


def test_alternating_flip_flips_every_image_on_odd_epochs():
    images = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(8, 3, 1, 1)
    epoch = [0]
    dl = DeviceLoader(
        ImageArrays(images, torch.zeros(8)),
        build,
        batch_size=8,
        transform=ImageTransform(torch.zeros(3), torch.ones(3), flip="alternate"),
        epoch=lambda: epoch[0],
    )
    e0 = next(iter(dl)).image
    epoch[0] = 1
    e1 = next(iter(dl)).image
    assert torch.equal(e1, e0.flip(-1))
