"""Tiny datasets written in the REAL on-disk formats, so the real loaders (torchvision, Pillow) read them.

One function per dataset; each writes under the root it is given and returns what a test needs to check the
loader against (the arrays written, the file names, the md5s). Import it from tests as `import fake_data`
(pytest puts tests/ on sys.path, as tests/ has no __init__.py).

- `write_cifar10`: cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta, pickled like the
  originals (Python 2 cPickle, protocol 2, py2 `str` for keys, names and the raw array bytes).
- `write_imagenet`: train/ and val/ with one folder per class of small JPEGs.
- `write_wikitext` (WikiText-2 and WikiText-103 share a format) and `write_ptb`: the three token files.
- `write_vaihingen`: top/ and gts_for_participants/ with small RGB tiles and colour-coded ground truth TIFFs.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FILE_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Pickles like Python 2's cPickle, which wrote the original CIFAR-10 batches.

    There, keys, batch labels, file names and the array's raw bytes are py2 `str` (SHORT_BINSTRING/BINSTRING
    opcodes): `pickle.load(f, encoding="latin1")` (torchvision) gives `str` keys, `encoding="bytes"` gives
    b"data", b"labels", ... as with the real files. numpy's reconstructor is named `numpy.core.multiarray`, as in
    numpy 1.x pickles.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):  # noqa: ANN001 — pickle's own signature
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
            name = name or obj.__qualname__
            self.write(pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@dataclass
class FakeCifar10:
    root: Path  # the folder to pass to load_cifar10 (it holds cifar-10-batches-py/)
    checksums: dict[str, str]  # file name -> md5 of what was written, for load_cifar10(checksums=...)
    x_train: np.ndarray  # uint8 (N, 3, 32, 32): data_batch_1..5 in order
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def folder(self) -> Path:
        return self.root / "cifar-10-batches-py"


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20, seed: int = 0) -> FakeCifar10:
    """5 training batches of `per_batch` images, a test batch of `n_test`, and batches.meta.

    Each row of "data" is 3072 uint8: the 1024 red values of the 32 x 32 image in row-major order, then green,
    then blue; "labels" is a list of ints in 0..9; keys and order as in the originals.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = {}, {}
    for k, name in enumerate(CIFAR10_FILE_NAMES):
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        batch_label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {k + 1} of 5"
        entry = {
            "batch_label": batch_label,
            "labels": y,
            "data": x.reshape(n, 3072),
            "filenames": [f"fake_{name}_{i:05d}.png" for i in range(n)],
        }
        (folder / name).write_bytes(py2_pickle(entry))
        xs[name], ys[name] = x, np.asarray(y, dtype=np.int64)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR10_LABEL_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    train = CIFAR10_FILE_NAMES[:5]
    return FakeCifar10(
        root=Path(root),
        checksums={name: md5(folder / name) for name in CIFAR10_FILE_NAMES + ("batches.meta",)},
        x_train=np.concatenate([xs[n] for n in train]),
        y_train=np.concatenate([ys[n] for n in train]),
        x_test=xs["test_batch"],
        y_test=ys["test_batch"],
    )


def accept_cifar10_checksums(monkeypatch, checksums: dict[str, str]) -> None:
    """For tests that reach torchvision's CIFAR10 through code that takes no `checksums` (e.g. a config-driven
    prep): make torchvision expect the fake files' md5s for the duration of the test (pytest's monkeypatch)."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[n, checksums[n]] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, checksums[n]] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": checksums[CIFAR10.meta["filename"]]})


# ---------------------------------------------------------------------------------------------------------------
# ImageNet-1K
# ---------------------------------------------------------------------------------------------------------------


def write_imagenet(
    root: Path,
    classes: tuple[str, ...] = ("n01440764", "n01443537", "n01484850"),
    per_class: int = 2,
    size: tuple[int, int] = (48, 36),
    seed: int = 0,
) -> dict[str, list[Path]]:
    """train/{wnid}/{wnid}_{k}.JPEG and val/{wnid}/ILSVRC2012_val_{k}.JPEG (val sorted into class folders, as
    after pytorch/examples' valprep.sh). Images are smooth random gradients (JPEG keeps them recognisable) of
    `size` (width, height). Returns the written paths per split."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {"train": [], "val": []}
    w, h = size
    counter = 0
    for split in ("train", "val"):
        for wnid in classes:
            folder = Path(root) / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                base = rng.integers(0, 256, size=3)
                ramp = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 128, size=3)
                pixels = np.clip(base + ramp + np.zeros((h, 1, 1)), 0, 255).astype(np.uint8)
                counter += 1
                name = f"{wnid}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{counter:08d}.JPEG"
                path = folder / name
                Image.fromarray(pixels, "RGB").save(path, format="JPEG", quality=90)
                written[split].append(path)
    return written


# ---------------------------------------------------------------------------------------------------------------
# Word corpora
# ---------------------------------------------------------------------------------------------------------------

# Lines in WikiText's style: a leading space, " = Heading = " lines, blank " " lines, @-@ / @,@ for split
# hyphens and numbers, <unk> for rare words.
WIKITEXT_TRAIN = (
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing video game . \n"
    " The game began development in 2010 , carrying over a large portion of the work . \n"
    " It met with positive sales in Japan , and was praised by both Japanese and western critics . \n"
)
WIKITEXT_VALID = " \n = Homarus gammarus = \n \n The game is a large video game . \n"
WIKITEXT_TEST = " \n = Robert <unk> = \n \n Robert met the critics in 2 @,@ 000 . \n"

PTB_TRAIN = (
    " aer banknote berlitz calloway centrust cluett fromstein gitano guterman \n"
    " pierre <unk> N years old will join the board as a nonexecutive director nov. N \n"
    " mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n"
)
PTB_VALID = " consumers may want to move their telephones a little closer to the tv set \n"
PTB_TEST = " no it was n't black monday \n but while the new york stock exchange did n't fall apart \n"


def _write_corpus(root: Path, names: dict[str, str], texts: dict[str, str]) -> dict[str, str]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, name in names.items():
        (root / name).write_text(texts[split], encoding="utf8")
    return dict(names)


def write_wikitext(
    root: Path, train: str = WIKITEXT_TRAIN, valid: str = WIKITEXT_VALID, test: str = WIKITEXT_TEST
) -> dict[str, str]:
    """wiki.{train,valid,test}.tokens (WikiText-2 and WikiText-103 share this format). Returns split -> name."""
    names = {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"}
    return _write_corpus(root, names, {"train": train, "valid": valid, "test": test})


def write_ptb(root: Path, train: str = PTB_TRAIN, valid: str = PTB_VALID, test: str = PTB_TEST) -> dict[str, str]:
    """ptb.{train,valid,test}.txt as in Mikolov's simple-examples/data. Returns split -> name."""
    names = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
    return _write_corpus(root, names, {"train": train, "valid": valid, "test": test})


# ---------------------------------------------------------------------------------------------------------------
# Vaihingen
# ---------------------------------------------------------------------------------------------------------------

VAIHINGEN_PALETTE = np.array(
    [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)], dtype=np.uint8
)


@dataclass
class FakeTile:
    image: np.ndarray  # uint8 (H, W, 3), as written to top/
    labels: np.ndarray  # uint8 (H, W) class ids, written to gts_for_participants/ as palette colours


def write_vaihingen(
    root: Path, ids: tuple[int, ...] = (1, 3, 5), size: tuple[int, int] = (300, 320), block: int = 20, seed: int = 0
) -> dict[int, FakeTile]:
    """top/top_mosaic_09cm_area{id}.tif (random RGB) and gts_for_participants/top_mosaic_09cm_area{id}.tif
    (classes constant over `block` x `block` squares, as palette colours); `size` is (height, width)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (Path(root) / "top").mkdir(parents=True, exist_ok=True)
    (Path(root) / "gts_for_participants").mkdir(parents=True, exist_ok=True)
    h, w = size
    tiles = {}
    for tile_id in ids:
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        coarse = rng.integers(0, 6, size=(-(-h // block), -(-w // block)), dtype=np.uint8)
        labels = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]
        Image.fromarray(image, "RGB").save(Path(root) / "top" / f"top_mosaic_09cm_area{tile_id}.tif")
        gt = VAIHINGEN_PALETTE[labels]
        Image.fromarray(gt, "RGB").save(Path(root) / "gts_for_participants" / f"top_mosaic_09cm_area{tile_id}.tif")
        tiles[tile_id] = FakeTile(image, labels)
    return tiles
