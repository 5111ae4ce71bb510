"""Real-dataset loaders on tiny files written in the real formats (tests/fake_data.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import fake_data
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pathgeo.training.data import cifar10
from pathgeo.training.data import corpus as corpora
from pathgeo.training.data import files as data_files
from pathgeo.training.data import imagenet as imagenet_data
from pathgeo.training.data import vaihingen as vaihingen_data
from pathgeo.training.data.files import DatasetError
from pathgeo.training.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from pathgeo.training.randomness import generator

# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> fake_data.FakeCifar10:
    return fake_data.write_cifar10(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def cifar_copy(tmp_path) -> fake_data.FakeCifar10:
    """A private copy for tests that damage files."""
    return fake_data.write_cifar10(tmp_path / "cifar")


def test_fake_cifar10_batches_have_the_real_pickle_conventions(cifar):
    # Python 2 pickles: bytes keys when loaded with encoding="bytes", str with "latin1" (what torchvision uses).
    with open(cifar.folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert list(raw) == [b"batch_label", b"labels", b"data", b"filenames"]
    assert raw[b"data"].dtype == np.uint8 and raw[b"data"].shape == (20, 3072)
    with open(cifar.folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert meta["label_names"][0] == "airplane" and meta["num_vis"] == 3072


def test_cifar10_round_trip(cifar):
    d = cifar10.load_cifar10(cifar.root, split_seed=1, checksums=cifar.checksums)
    assert set(d) == {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"}
    assert d["x_train"].shape == (80, 3, 32, 32) and d["x_val"].shape == (20, 3, 32, 32)
    assert d["x_test"].shape == (20, 3, 32, 32)
    assert d["x_train"].dtype == torch.uint8 and d["y_train"].dtype == torch.int64
    # The split is the permutation of generator(split_seed, "cifar10-split"): first 80 % train, rest validation.
    perm = torch.randperm(100, generator=generator(1, "cifar10-split"))
    x_all, y_all = torch.from_numpy(cifar.x_train), torch.from_numpy(cifar.y_train)
    assert torch.equal(d["x_train"], x_all[perm[:80]]) and torch.equal(d["y_train"], y_all[perm[:80]])
    assert torch.equal(d["x_val"], x_all[perm[80:]]) and torch.equal(d["y_val"], y_all[perm[80:]])
    assert torch.equal(d["x_test"], torch.from_numpy(cifar.x_test))
    assert torch.equal(d["y_test"], torch.from_numpy(cifar.y_test))


def test_cifar10_split_is_fixed_by_the_split_seed(cifar):
    a = cifar10.load_cifar10(cifar.root, 3, checksums=cifar.checksums)
    b = cifar10.load_cifar10(cifar.root, 3, checksums=cifar.checksums)
    c = cifar10.load_cifar10(cifar.root, 4, checksums=cifar.checksums)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x_train"], c["x_train"])
    assert torch.equal(a["x_test"], c["x_test"])
    # Train and validation partition the training images.
    rows = {bytes(x.numpy()) for x in torch.cat([a["x_train"], a["x_val"]])}
    assert rows == {bytes(x) for x in cifar.x_train}
    half = cifar10.load_cifar10(cifar.root, 3, val_fraction=0.5, checksums=cifar.checksums)
    assert len(half["x_train"]) == len(half["x_val"]) == 50


def test_cifar10_checks_the_real_md5s_by_default(cifar):
    # Fake files are not the published ones: torchvision's integrity check names none; ours names the file.
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py/data_batch_1: md5 .* differs"):
        cifar10.load_cifar10(cifar.root, 1)


def test_fake_checksums_can_be_given_to_plain_torchvision(cifar, monkeypatch):
    from torchvision.datasets import CIFAR10

    fake_data.accept_cifar10_checksums(monkeypatch, cifar.checksums)
    ds = CIFAR10(str(cifar.root), train=False, download=False)
    assert ds.data.shape == (20, 32, 32, 3) and ds.classes[-1] == "truck"
    assert cifar10.load_cifar10(cifar.root, 1)["x_test"].shape == (20, 3, 32, 32)


def test_cifar10_truncated_batch_is_named(cifar_copy):
    path = cifar_copy.folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match=r"data_batch_3: md5 .*truncated"):
        cifar10.load_cifar10(cifar_copy.root, 1, checksums=cifar_copy.checksums)
    # Without md5 checks the unpickling fails; still one error naming the file.
    unchecked = dict.fromkeys(cifar_copy.checksums)
    with pytest.raises(DatasetError, match=r"data_batch_3: cannot be unpickled"):
        cifar10.load_cifar10(cifar_copy.root, 1, checksums=unchecked)


def test_cifar10_missing_data_and_wrong_layout(cifar_copy, tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: CIFAR-10 root not found"):
        cifar10.load_cifar10(tmp_path / "nowhere", 1)
    with pytest.raises(DatasetError, match=r"points at the batches folder itself"):
        cifar10.load_cifar10(cifar_copy.folder, 1, checksums=cifar_copy.checksums)
    (cifar_copy.folder / "test_batch").unlink()
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py/test_batch: missing"):
        cifar10.load_cifar10(cifar_copy.root, 1, checksums=cifar_copy.checksums)


def test_cifar10_fingerprint_changes_with_a_file(cifar_copy, tmp_path):
    before = cifar10.cifar10_fingerprint(cifar_copy.root)
    assert before == cifar10.cifar10_fingerprint(cifar_copy.root)
    assert [e["path"] for e in before["files"]][-1] == "cifar-10-batches-py/batches.meta"
    assert all("sha256" in e for e in before["files"])
    meta = cifar_copy.folder / "batches.meta"
    data = bytearray(meta.read_bytes())
    data[-3] ^= 1
    meta.write_bytes(bytes(data))
    assert cifar10.cifar10_fingerprint(cifar_copy.root)["digest"] != before["digest"]
    # Large files get a head/tail hash, which still sees a truncation; the root's location is not part of it.
    small = data_files.fingerprint(cifar_copy.root, cifar10.cifar10_files(cifar_copy.root), full_hash_max_bytes=100)
    assert all("sha256_head_tail" in e for e in small["files"])
    path = cifar_copy.folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-10])
    files = cifar10.cifar10_files(cifar_copy.root)
    assert data_files.fingerprint(cifar_copy.root, files, full_hash_max_bytes=100) != small
    here = cifar10.cifar10_fingerprint(cifar_copy.root)
    moved = tmp_path / "moved"
    cifar_copy.root.rename(moved)
    assert cifar10.cifar10_fingerprint(moved) == here
    with pytest.raises(DatasetError, match="batches.meta: missing; expected the CIFAR-10 python batch file"):
        (moved / "cifar-10-batches-py" / "batches.meta").unlink()
        cifar10.cifar10_fingerprint(moved)


def test_cifar10_fingerprint_gives_the_layout_hints(cifar_copy, tmp_path):
    # Prep fingerprints before any job loads: the hints must come from there, not a generic "no file here".
    with pytest.raises(DatasetError, match=r"points at the batches folder itself"):
        cifar10.cifar10_fingerprint(cifar_copy.folder)
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DatasetError, match=r"cifar-10-python.tar.gz is there but not extracted"):
        cifar10.cifar10_fingerprint(packed)


def test_a_bad_label_names_its_file_and_value(cifar_copy):
    path = cifar_copy.folder / "data_batch_3"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["labels"][7] = 12
    path.write_bytes(fake_data.py2_pickle(entry))
    unchecked = dict.fromkeys(cifar_copy.checksums)
    with pytest.raises(DatasetError) as caught:
        cifar10.load_cifar10(cifar_copy.root, 1, checksums=unchecked)
    assert str(caught.value) == (
        f"{path}: label 12 at entry 7 is outside 0..9 (CIFAR-10 has 10 classes); 1 of its 20 labels is outside that "
        "range. The file is damaged or is not CIFAR-10's: download and extract CIFAR-10 again"
    )


def test_an_md5_mismatch_mentions_verify_md5(cifar):
    with pytest.raises(DatasetError, match=r"extract it again\. A copy re-packed on purpose .* `verify_md5: false`"):
        cifar10.load_cifar10(cifar.root, 1)


def test_fingerprint_changes_name_each_file_and_class_folder():
    old = {
        "files": [
            {"path": "a", "bytes": 3, "sha256": "x"},
            {"path": "b", "bytes": 3, "sha256": "y"},
            {"path": "c", "bytes": 1, "sha256": "z"},
        ],
        "folders": [
            {
                "path": "train",
                "classes": {"n1": {"files": 2, "names_sha256": "p"}, "n2": {"files": 1, "names_sha256": "q"}},
            }
        ],
    }
    new = {
        "files": [
            {"path": "a", "bytes": 4, "sha256": "x2"},
            {"path": "b", "bytes": 3, "sha256": "y2"},
            {"path": "d", "bytes": 1, "sha256": "w"},
        ],
        "folders": [{"path": "train", "classes": {"n1": {"files": 3, "names_sha256": "r"}}}],
    }
    assert data_files.fingerprint_changes(old, new) == [
        "a changed (3 -> 4 bytes)",
        "b changed (same size, other content)",
        "c is gone",
        "d is new",
        "train/n1/ changed (2 -> 3 files)",
        "train/n2/ is gone",
    ]


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 augmentation
# ---------------------------------------------------------------------------------------------------------------


def _batch(n: int = 64) -> torch.Tensor:
    return torch.randint(1, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0)).to(torch.uint8)


def augment(x: torch.Tensor, gen: torch.Generator, flip: bool = True) -> torch.Tensor:
    return cifar10.apply_crop_flip(x, cifar10.draw_crop_flip(len(x), gen, flip=flip))


def test_augmentation_is_deterministic_given_the_generator():
    x = _batch()
    a = augment(x, generator(0, "augment", 1))
    b = augment(x, generator(0, "augment", 1))
    c = augment(x, generator(0, "augment", 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape


def test_crop_offsets_and_flips_are_in_range_and_independent_of_flip():
    p = cifar10.draw_crop_flip(512, generator(1, "augment"), pad=4, flip=True)
    q = cifar10.draw_crop_flip(512, generator(1, "augment"), pad=4, flip=False)
    assert set(p.top.tolist()) == set(range(9)) and set(p.left.tolist()) == set(range(9))
    assert 0.4 < p.flip.float().mean() < 0.6
    assert torch.equal(p.top, q.top) and torch.equal(p.left, q.left) and not q.flip.any()


def test_apply_crop_flip_matches_per_sample_crop_and_flip():
    x = _batch(32)
    p = cifar10.draw_crop_flip(32, generator(2, "augment"), pad=4, flip=True)
    out = cifar10.apply_crop_flip(x, p, pad=4)
    padded = F.pad(x, (4, 4, 4, 4))
    for k in range(32):
        t, le = int(p.top[k]), int(p.left[k])
        ref = padded[k, :, t : t + 32, le : le + 32]
        assert torch.equal(out[k], ref.flip(-1) if p.flip[k] else ref)


def test_padding_is_zero_and_flip_flips():
    x = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)
    corner = cifar10.CropFlip(torch.tensor([0, 8]), torch.tensor([0, 8]), torch.tensor([False, False]))
    out = cifar10.apply_crop_flip(x, corner, pad=4)
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all() and (out[0, :, 4:, 4:] == 200).all()
    assert (out[1, :, -4:, :] == 0).all() and (out[1, :, :, -4:] == 0).all()
    y = _batch(2)
    centred = cifar10.CropFlip(torch.tensor([4, 4]), torch.tensor([4, 4]), torch.tensor([True, False]))
    out = cifar10.apply_crop_flip(y, centred, pad=4)
    assert torch.equal(out[0], y[0].flip(-1)) and torch.equal(out[1], y[1])


def test_augmentation_on_float_and_normalize():
    x = _batch(8)
    a = augment(x, generator(3, "a"))
    b = augment(x.float() / 255, generator(3, "a"))
    assert torch.allclose(a.float() / 255, b)
    assert torch.allclose(cifar10.normalize(a), cifar10.normalize(b))
    mean = torch.tensor(cifar10.CIFAR10_MEAN).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    assert cifar10.normalize(mean).abs().max() < 1e-6
    with pytest.raises(ValueError, match="N x C x H x W"):
        augment(x[0], generator(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_on_cuda_equals_cpu():
    x = _batch()
    crops = cifar10.draw_crop_flip(len(x), generator(0, "augment"), flip=True)
    cpu = cifar10.apply_crop_flip(x, crops)
    gpu = cifar10.apply_crop_flip(x.cuda(), crops.to(torch.device("cuda")))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)


# ---------------------------------------------------------------------------------------------------------------
# ImageNet-1K
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    fake_data.write_imagenet(root)
    return root


@pytest.fixture
def imagenet_copy(tmp_path) -> tuple[Path, dict]:
    return tmp_path / "imagenet", fake_data.write_imagenet(tmp_path / "imagenet")


def test_imagenet_round_trip(imagenet):
    train, val = imagenet_data.load_imagenet(imagenet, num_classes=3)
    assert len(train) == len(val) == 6 and train.classes == ["n01440764", "n01443537", "n01484850"]
    x, y = train[imagenet_data.ItemKey(0, 0, 3)]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 1
    x, y = val[5]
    assert x.shape == (3, 224, 224) and y == 2
    with pytest.raises(TypeError, match="ItemKey"):
        train[0]
    with pytest.raises(DatasetError, match="3 class folders, expected 1000"):
        imagenet_data.load_imagenet(imagenet, num_classes=1000)


def test_imagenet_transforms_equal_torchvisions(imagenet):
    # Same draws as RandomResizedCrop(224) + RandomHorizontalFlip() under torch.manual_seed(s).
    from torchvision import transforms as T

    train, val = imagenet_data.load_imagenet(imagenet)
    paper_train = T.Compose(
        [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    paper_val = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    img = train.load(0)
    state = torch.get_rng_state()
    for seed in range(8):
        torch.manual_seed(seed)
        expected = paper_train(img)
        assert torch.equal(imagenet_data.imagenet_train_transform(img, torch.Generator().manual_seed(seed)), expected)
    torch.set_rng_state(state)
    assert torch.equal(val[0][0], paper_val(val.load(0)))


def test_imagenet_augmentation_follows_the_randomness_contract(imagenet):
    train, _ = imagenet_data.load_imagenet(imagenet)
    state = torch.get_rng_state()
    a = train[imagenet_data.ItemKey(5, 2, 1)][0]
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(a, train[(5, 2, 1)][0])
    assert not torch.equal(a, train[imagenet_data.ItemKey(5, 3, 1)][0])
    assert not torch.equal(a, train[imagenet_data.ItemKey(6, 2, 1)][0])


def test_imagenet_batches_follow_the_order_for_any_num_workers(imagenet):
    train, val = imagenet_data.load_imagenet(imagenet)
    order = torch.tensor([5, 0, 3, 1, 4, 2])
    batches = imagenet_data.imagenet_batches(train, order, batch_size=4, epoch=1, seed=9, num_workers=0)
    assert len(batches) == 2
    serial = list(batches)
    parallel = list(imagenet_data.imagenet_batches(train, order, batch_size=4, epoch=1, seed=9, num_workers=2))
    assert [len(y) for _, y in serial] == [4, 2]
    assert torch.cat([y for _, y in serial]).tolist() == [train.targets[i] for i in order.tolist()]
    for (xa, ya), (xb, yb) in zip(serial, parallel, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(serial[0][0][1], train[imagenet_data.ItemKey(9, 1, 0)][0])
    ((xv, yv),) = imagenet_data.imagenet_batches(val, torch.arange(6), batch_size=6, epoch=0, seed=0)
    assert torch.equal(xv[2], val[2][0])


def test_imagenet_layout_errors(imagenet_copy, tmp_path):
    root, _ = imagenet_copy
    with pytest.raises(DatasetError, match="nowhere: ImageNet root not found"):
        imagenet_data.load_imagenet(tmp_path / "nowhere")
    # val/ as shipped: JPEGs directly in the folder.
    for path in (root / "val").rglob("*.JPEG"):
        path.rename(root / "val" / path.name)
    for folder in (root / "val").iterdir():
        if folder.is_dir():
            folder.rmdir()
    with pytest.raises(DatasetError, match=r"val: no class folders.*holds 6 images directly.*valprep"):
        imagenet_data.load_imagenet(root)
    for path in (root / "val").iterdir():
        path.unlink()
    (root / "val").rmdir()
    with pytest.raises(DatasetError, match=r"imagenet/val: missing; expected one sub-folder per class"):
        imagenet_data.load_imagenet(root)


def test_imagenet_fingerprint_gives_the_layout_hints(imagenet_copy):
    root, _ = imagenet_copy
    for path in (root / "val").rglob("*.JPEG"):
        path.rename(root / "val" / path.name)
    for folder in (root / "val").iterdir():
        if folder.is_dir():
            folder.rmdir()
    with pytest.raises(DatasetError, match=r"val: no class folders.*holds 6 images directly.*valprep"):
        imagenet_data.imagenet_fingerprint(root)


def test_imagenet_empty_class_and_mismatched_classes(imagenet_copy):
    root, _ = imagenet_copy
    (root / "train" / "n09999999").mkdir()
    with pytest.raises(DatasetError, match=r"imagenet/train: empty class folder\(s\).*n09999999"):
        imagenet_data.load_imagenet(root)
    jpeg = (root / "train" / "n01440764" / "n01440764_0.JPEG").read_bytes()
    (root / "train" / "n09999999" / "x.JPEG").write_bytes(jpeg)
    with pytest.raises(DatasetError, match=r"imagenet/val: its class folders differ.*only in train: \['n09999999'\]"):
        imagenet_data.load_imagenet(root)


def test_imagenet_corrupt_and_truncated_jpeg_are_named(imagenet_copy):
    root, written = imagenet_copy
    garbage, truncated = written["train"][1], written["train"][4]
    garbage.write_bytes(b"not a jpeg at all" * 10)
    truncated.write_bytes(truncated.read_bytes()[:300])
    train, _ = imagenet_data.load_imagenet(root)
    with pytest.raises(DatasetError, match=rf"{garbage.name}: cannot decode this image"):
        train[imagenet_data.ItemKey(0, 0, 1)]
    with pytest.raises(DatasetError, match=rf"{truncated.name}: cannot decode this image.*truncated"):
        train[imagenet_data.ItemKey(0, 0, 4)]
    # Through worker processes the error keeps its type and the file's name.
    with pytest.raises(DatasetError, match=garbage.name):
        list(imagenet_data.imagenet_batches(train, torch.arange(6), 2, 0, 0, num_workers=1))


def test_imagenet_fingerprint_sees_class_folders(imagenet_copy):
    root, written = imagenet_copy
    before = imagenet_data.imagenet_fingerprint(root)
    assert [f["path"] for f in before["folders"]] == ["train", "val"]
    assert before["folders"][0]["classes"]["n01440764"]["files"] == 2
    written["val"][0].rename(written["val"][0].with_name("renamed.JPEG"))
    assert imagenet_data.imagenet_fingerprint(root)["digest"] != before["digest"]


# ---------------------------------------------------------------------------------------------------------------
# Word corpora
# ---------------------------------------------------------------------------------------------------------------


def _examples_tokenize(path: Path, word2idx: dict[str, int]) -> list[int]:
    # pytorch/examples word_language_model data.py, adding words as they come.
    ids = []
    with open(path, encoding="utf8") as f:
        for line in f:
            for word in line.split() + ["<eos>"]:
                ids.append(word2idx.setdefault(word, len(word2idx)))
    return ids


def test_wikitext_vocabulary_from_training_only(tmp_path):
    files = fake_data.write_wikitext(tmp_path)
    corpus = corpora.load_corpus(tmp_path, files)
    word2idx: dict[str, int] = {}
    assert corpus.train.tolist() == _examples_tokenize(tmp_path / files["train"], word2idx)
    assert corpus.vocab == tuple(word2idx)  # same ids as pytorch/examples on the training split
    assert corpus.train.dtype == torch.int64 and corpus.vocab[corpus.train[0]] == "<eos>"  # blank first line
    # Valid/test words not in training become <unk>; counted per split.
    valid = [corpus.vocab[i] for i in corpus.valid.tolist()]
    assert valid[:6] == ["<eos>", "=", "<unk>", "<unk>", "=", "<eos>"]
    assert corpus.unseen == {"valid": 2, "test": 5}
    assert corpus.vocab[corpus.unk_id] == "<unk>" and corpus.word2idx["<unk>"] == corpus.unk_id
    assert valid.count("<eos>") == 4  # one per line


def test_ptb_and_a_training_split_without_unk(tmp_path):
    files = fake_data.write_ptb(tmp_path / "ptb")
    corpus = corpora.load_corpus(tmp_path / "ptb", corpora.PTB_FILES)
    assert files == corpora.PTB_FILES and corpus.unseen == {"valid": 12, "test": 16}
    plain = fake_data.write_wikitext(tmp_path / "plain", train="a b\nb c\n", valid="a z\n", test="c\n")
    corpus = corpora.load_corpus(tmp_path / "plain", plain)
    assert corpus.vocab == ("a", "b", "<eos>", "c", "<unk>")  # <unk> appended after the training words
    assert corpus.valid.tolist() == [0, 4, 2]


def test_corpus_errors(tmp_path):
    files = fake_data.write_wikitext(tmp_path)
    (tmp_path / files["valid"]).unlink()
    with pytest.raises(DatasetError, match=r"wiki.valid.tokens: missing; expected the corpus files"):
        corpora.load_corpus(tmp_path)
    with pytest.raises(DatasetError, match=r"wiki.valid.tokens: missing; expected the corpus files"):
        corpora.corpus_fingerprint(tmp_path)
    (tmp_path / files["valid"]).write_bytes(b"caf\xe9 \xff\n")
    with pytest.raises(DatasetError, match=r"wiki.valid.tokens: not valid UTF-8"):
        corpora.load_corpus(tmp_path)
    fake_data.write_wikitext(tmp_path, train=" \n \n")
    with pytest.raises(DatasetError, match=r"wiki.train.tokens: no tokens"):
        corpora.load_corpus(tmp_path)


def test_batchify_is_batch_first():
    tokens = torch.arange(103)
    source = corpora.batchify(tokens, 4)
    assert source.shape == (4, 25)  # (N, L); 3 trailing tokens dropped
    for n in range(4):
        assert torch.equal(source[n], tokens[n * 25 : (n + 1) * 25])  # each row one contiguous stretch
    # pytorch/examples' (L, N) layout is the transpose.
    examples = tokens.narrow(0, 0, 100).view(4, -1).t().contiguous()
    assert torch.equal(source, examples.t())


def test_sequence_batches_rows_are_contiguous_and_targets_shifted(tmp_path):
    corpus = corpora.load_corpus(tmp_path, fake_data.write_wikitext(tmp_path))
    tokens = corpus.train
    source = corpora.batchify(tokens, 3)
    n, length = source.shape
    batches = list(corpora.sequence_batches(source, seq_len=7))
    assert len(batches) == corpora.num_sequence_batches(source, 7) == -(-(length - 1) // 7)
    for step, (inputs, targets) in enumerate(batches):
        t = inputs.shape[1]
        assert inputs.shape == targets.shape == (n, t) and t <= 7
        for row in range(n):
            start = row * length + step * 7
            assert torch.equal(inputs[row], tokens[start : start + t])
            assert torch.equal(targets[row], tokens[start + 1 : start + 1 + t])
    assert torch.equal(torch.cat([i for i, _ in batches], 1), source[:, :-1])
    assert all(i.shape[1] == 7 for i, _ in corpora.sequence_batches(source, 7, drop_last=True))
    with pytest.raises(IndexError):
        corpora.get_batch(source, length - 1, 7)


def test_corpus_fingerprint_changes_with_the_text(tmp_path):
    files = fake_data.write_ptb(tmp_path)
    before = corpora.corpus_fingerprint(tmp_path, files)
    fake_data.write_ptb(tmp_path, test=" no it was black monday \n")
    assert corpora.corpus_fingerprint(tmp_path, files)["digest"] != before["digest"]


# ---------------------------------------------------------------------------------------------------------------
# Vaihingen
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vaihingen(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("vaihingen")
    return root, fake_data.write_vaihingen(root)


def test_vaihingen_split_ids():
    train, val, test = (
        set(vaihingen_data.VAIHINGEN_TRAIN_IDS),
        set(vaihingen_data.VAIHINGEN_VAL_IDS),
        set(vaihingen_data.VAIHINGEN_TEST_IDS),
    )
    assert (len(train), len(val), len(test)) == (11, 5, 17)
    assert len(train | val | test) == 33


def test_vaihingen_round_trip(vaihingen):
    root, fake = vaihingen
    tiles = vaihingen_data.load_vaihingen(root, [1, 3, 5])
    assert tiles.shapes == [(300, 320)] * 3
    for k, tile_id in enumerate((1, 3, 5)):
        assert torch.equal(tiles.images[k], torch.from_numpy(fake[tile_id].image).permute(2, 0, 1))
        assert torch.equal(tiles.labels[k], torch.from_numpy(fake[tile_id].labels))
    assert tiles.paths[0][1] == root / "gts_for_participants" / "top_mosaic_09cm_area1.tif"


def test_vaihingen_colour_map(tmp_path):
    rgb = np.array([[list(c) for c in vaihingen_data.VAIHINGEN_PALETTE]], dtype=np.uint8)
    assert vaihingen_data.colours_to_labels(rgb, tmp_path / "gt.tif").tolist() == [[0, 1, 2, 3, 4, 5]]
    bad = rgb.copy()
    bad[0, 4] = (255, 255, 1)
    with pytest.raises(DatasetError, match=r"gt.tif: 1 pixels of colours outside.*\(255, 255, 1\).*column 4"):
        vaihingen_data.colours_to_labels(bad, tmp_path / "gt.tif")
    black = rgb.copy()
    black[0, 2] = 0
    with pytest.raises(DatasetError, match="outside the ISPRS palette"):
        vaihingen_data.colours_to_labels(black, tmp_path / "gt.tif")
    assert vaihingen_data.colours_to_labels(black, tmp_path / "gt.tif", allow_undefined=True)[0, 2] == 255


def test_vaihingen_patch_plan_is_deterministic_and_in_range(vaihingen):
    root, _ = vaihingen
    tiles = vaihingen_data.load_vaihingen(root, [1, 3, 5])
    plan = vaihingen_data.vaihingen_train_plan(tiles, seed=0, epoch=4)
    assert len(plan) == 10_000 and plan.size == 256
    again = vaihingen_data.vaihingen_train_plan(tiles, seed=0, epoch=4)
    other = vaihingen_data.vaihingen_train_plan(tiles, seed=0, epoch=5)
    fields = ("tile", "top", "left", "flip", "mirror")
    assert all(torch.equal(getattr(plan, f), getattr(again, f)) for f in fields)
    assert not torch.equal(plan.top, other.top)
    assert set(plan.tile.tolist()) == {0, 1, 2}
    assert plan.top.min() == 0 and plan.top.max() == 300 - 256 and plan.left.max() == 320 - 256
    assert 0.45 < plan.flip.float().mean() < 0.55 and 0.45 < plan.mirror.float().mean() < 0.55
    val = vaihingen_data.vaihingen_val_plan(tiles, seed=0)
    assert len(val) == 1000 and not val.flip.any() and not val.mirror.any()
    assert torch.equal(val.top, vaihingen_data.vaihingen_val_plan(tiles, seed=0).top)


def test_vaihingen_patches_are_the_planned_crops(vaihingen):
    root, fake = vaihingen
    tiles = vaihingen_data.load_vaihingen(root, [1, 3, 5])
    plan = vaihingen_data.vaihingen_train_plan(tiles, seed=1, epoch=0, n=40)
    # The second minibatch of 10 patches, as the segmentation task takes it.
    x, y = vaihingen_data.extract_patches(tiles, plan, range(10, 20))
    assert x.shape == (10, 3, 256, 256) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1
    seen = set()
    for b in range(10):
        k = 10 + b
        t, top, left = int(plan.tile[k]), int(plan.top[k]), int(plan.left[k])
        tile = fake[(1, 3, 5)[t]]
        img = tile.image[top : top + 256, left : left + 256].transpose(2, 0, 1)
        lab = tile.labels[top : top + 256, left : left + 256]
        if plan.flip[k]:
            img, lab = img[:, ::-1], lab[::-1]
        if plan.mirror[k]:
            img, lab = img[:, :, ::-1], lab[:, ::-1]
        seen.add((bool(plan.flip[k]), bool(plan.mirror[k])))
        assert torch.equal(x[b], torch.from_numpy(img.copy()).float() / 255)
        assert torch.equal(y[b], torch.from_numpy(lab.copy()).long())
    assert len(seen) > 1


def test_vaihingen_undefined_pixels_become_ignore_index(tmp_path):
    from PIL import Image

    fake = fake_data.write_vaihingen(tmp_path, ids=(7,), size=(256, 256))
    gt_path = tmp_path / "gts_for_participants" / "top_mosaic_09cm_area7.tif"
    gt = np.asarray(Image.open(gt_path)).copy()
    gt[:5] = 0
    Image.fromarray(gt, "RGB").save(gt_path)
    with pytest.raises(DatasetError, match="area7.tif: 1280 pixels of colours outside"):
        vaihingen_data.load_vaihingen(tmp_path, [7])
    tiles = vaihingen_data.load_vaihingen(tmp_path, [7], allow_undefined=True)
    _, y = vaihingen_data.extract_patches(tiles, vaihingen_data.vaihingen_val_plan(tiles, 0, n=1), [0])
    assert (y[0, :5] == vaihingen_data.IGNORE_INDEX).all()
    assert torch.equal(y[0, 5:], torch.from_numpy(fake[7].labels[5:]).long())


def test_vaihingen_file_errors(tmp_path):
    from PIL import Image

    with pytest.raises(DatasetError, match="nowhere: Vaihingen root not found"):
        vaihingen_data.load_vaihingen(tmp_path / "nowhere", [1])
    fake_data.write_vaihingen(tmp_path, ids=(1, 3, 5, 7), size=(40, 60))
    with pytest.raises(DatasetError, match=r"top/top_mosaic_09cm_area2.tif: missing; expected the 3-channel"):
        vaihingen_data.load_vaihingen(tmp_path, [1, 2])
    (tmp_path / "gts_for_participants" / "top_mosaic_09cm_area3.tif").unlink()
    with pytest.raises(DatasetError, match=r"gts_for_participants/top_mosaic_09cm_area3.tif: missing"):
        vaihingen_data.load_vaihingen(tmp_path, [3])
    top5 = tmp_path / "top" / "top_mosaic_09cm_area5.tif"
    top5.write_bytes(top5.read_bytes()[:2000])
    with pytest.raises(DatasetError, match=r"area5.tif: cannot read this image"):
        vaihingen_data.load_vaihingen(tmp_path, [5])
    top7 = tmp_path / "top" / "top_mosaic_09cm_area7.tif"
    Image.fromarray(np.zeros((40, 60), dtype=np.uint8), "L").save(top7)
    with pytest.raises(DatasetError, match=r"area7.tif: a L image .* expected the 3-channel"):
        vaihingen_data.load_vaihingen(tmp_path, [7])
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8), "RGB").save(top7)
    with pytest.raises(DatasetError, match=r"area7.tif: ground truth \(40, 60\) differs"):
        vaihingen_data.load_vaihingen(tmp_path, [7])
    tiles = vaihingen_data.load_vaihingen(tmp_path, [1])
    with pytest.raises(ValueError, match="smaller than the 256 x 256 patch"):
        vaihingen_data.vaihingen_train_plan(tiles, 0, 0)


def test_vaihingen_fingerprint_changes_with_a_label_tile(tmp_path):
    from PIL import Image

    fake = fake_data.write_vaihingen(tmp_path, ids=(1,), size=(30, 30))
    before = vaihingen_data.vaihingen_fingerprint(tmp_path, [1])
    labels = fake[1].labels.copy()
    labels[0, 0] = (labels[0, 0] + 1) % 6
    path = tmp_path / "gts_for_participants" / "top_mosaic_09cm_area1.tif"
    Image.fromarray(fake_data.VAIHINGEN_PALETTE[labels], "RGB").save(path)
    assert vaihingen_data.vaihingen_fingerprint(tmp_path, [1])["digest"] != before["digest"]
    path.unlink()
    with pytest.raises(DatasetError, match=r"area1.tif: missing; expected the colour-coded ground truth of tile 1"):
        vaihingen_data.vaihingen_fingerprint(tmp_path, [1])
