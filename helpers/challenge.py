"""The hackathon finale: a hidden test set, submissions, scoring, ranking (lesson 09).

The task (by default): segment both lungs on frontal chest X-rays. The instructor makes a
test set that is not in the repository, teams train what they like and hand in one folder
of predicted masks each, and the scorer ranks them. ``python -m helpers challenge`` runs it
(:func:`main`; ``--help`` lists the commands):

* :func:`make_test_set` (``challenge make --seed SECRET``) draws the hidden test set from a
  secret seed with the synthetic generator's ``"hard"`` setting (other poses, denser
  opacities: not a copy of the training distribution), and :func:`test_set_from_folder`
  (``challenge from-folder``) takes it from a real data set prepared with ``python -m
  helpers data prepare``. Both write ``<out>/handout/images/`` (hand these to the teams) and
  ``<out>/private/labels/`` (never leaves the instructor's machine; the folder is made
  readable by its owner only). Nothing committed can regenerate the labels: the seed is
  the instructor's, and only a slow salted hash of it is stored, beside the labels.
* :func:`practice_set` is a public set of the same kind *with* labels
  (``data/challenge_practice/``), on which teams measure themselves before handing in.
* A submission is one folder per team: one binary mask per test image, named like the
  image (PNG for 2D, NIfTI for 3D), and ``team.json`` (``{"team": ..., "method": ...}``).
  :func:`write_submission` writes one, :func:`validate_submission` checks one against the
  test images (what teams run: ``challenge check``), and :func:`score_submissions`
  (``challenge score``) validates and scores every team folder of a folder.
* Untrusted files are read, never executed: only PNG (Pillow, PNG decoder only) and NIfTI
  (nibabel, header first) are decoded, symlinks and special files are refused, sizes are
  checked before anything is decoded (:data:`MAX_MASK_BYTES`, :data:`MAX_TEAM_JSON_BYTES`).
  Each problem becomes a named :class:`Problem` (``missing``, ``extra``, ``wrong_size``,
  ``not_binary``, ``corrupt``, ``symlink``, ``too_large``, ``team_json``, ...) and the other
  teams are still scored.
* :func:`rank` states and applies the ranking rule (:data:`RANKING_RULE`): BraTS-style mean
  rank over images and the two metrics (Dice, HD95), a bootstrap over the test images for
  each team's interval, and ties where the order is within the noise.
* :mod:`helpers.challenge_page` writes the leaderboard (self-contained HTML and CSV);
  :func:`watch` re-scores as submissions arrive.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import os
import secrets
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from helpers import config

if TYPE_CHECKING:
    import keras

__all__ = [
    "TASK", "RANKING_RULE", "METRIC_RULE", "DEFAULT_N_IMAGES", "PRACTICE_SEED", "Problem", "TestCase", "TestSet",
    "TeamResult", "Ranking", "make_test_set", "test_set_from_folder", "practice_set", "challenge_dir",
    "read_test_set", "write_submission", "validate_submission", "check_submission", "score_submission",
    "score_submissions", "rank", "write_leaderboard", "watch", "main", "BASELINE_CHANGES", "predict_images",
]

#: What the teams segment, in one line (the leaderboard's subtitle).
TASK = "both lungs on frontal chest X-rays"
#: Number of images of the hidden test set by default.
DEFAULT_N_IMAGES = 100
#: Number of images of the public practice set.
PRACTICE_N_IMAGES = 40
#: The public seed of the practice set (its labels are meant to be seen).
PRACTICE_SEED = "practice-set-of-the-unet-course"
#: Shortest secret seed accepted: a short seed can be found by trying them all.
MIN_SEED_LENGTH = 8
#: File names of the test images: ``CHL_0001.png`` ...
NAME_PREFIX = "CHL"
#: Largest mask file read, in bytes (a 256x256 PNG mask is a few kB; a compressed CT mask
#: a few MB); a bigger file is refused before it is decoded.
MAX_MASK_BYTES = 64 * 1024 * 1024
#: Largest ``team.json`` read, in bytes.
MAX_TEAM_JSON_BYTES = 64 * 1024
#: Longest team name and method description kept from ``team.json``.
MAX_TEAM_NAME = 60
MAX_METHOD = 2000
#: The file with the team's name and what they did.
TEAM_FILE = "team.json"
#: Bootstrap resamples of the test images, and the share of them in which one team must beat
#: another to be placed above it.
BOOTSTRAP = 1000
CONFIDENCE = 0.95

METRIC_RULE = ("Each test image is scored with Dice (higher is better) and HD95, the 95th percentile of the "
               "Hausdorff distance between the outlines (lower is better; pixels of the image for PNG masks, "
               "millimetres for NIfTI). An empty mask where the truth has lungs scores Dice 0 and HD95 = the "
               "image diagonal; two empty masks score Dice 1 and HD95 0.")
RANKING_RULE = ("On every test image the teams are ranked twice, by Dice and by HD95 (equal values share the "
                "mean rank); a team's score is its mean rank over all images and both metrics, lower is better "
                "(the BraTS way). The test images are resampled 1000 times (bootstrap, the same resample for "
                "every team): a team's interval is the 2.5th-97.5th percentile of its place over the resamples, "
                "and a team is placed below another only if the other has the better score in at least 95 % of "
                "the resamples. Its place is 1 + the number of teams placed above it, so teams within the "
                "noise of each other share a place (a tie).")


class ChallengeError(ValueError):
    """The challenge cannot run as asked (no labels, a weak seed, a folder in the way); the
    message says the fix.
    """


# ------------------------------------------------------------------------------ the test set

def challenge_dir() -> Path:
    """Default folder of the instructor's challenge: ``data/challenge``."""
    return config.data_dir() / "challenge"


def _secret_int(seed: str) -> int:
    """A 128-bit generator seed from the secret text (never stored)."""
    return int.from_bytes(hashlib.sha256(f"unet-course-challenge:{seed}".encode()).digest()[:16], "big")


def _seed_check(seed: str) -> str:
    """A slow salted hash of the seed: recognises a rerun with the same seed without storing it."""
    return hashlib.pbkdf2_hmac("sha256", seed.encode(), b"unet-course-challenge", 200_000).hex()[:32]


def case_names(n_images: int) -> list[str]:
    """``CHL_0001.png`` ... for ``n_images`` test images."""
    return [f"{NAME_PREFIX}_{i:04d}.png" for i in range(1, int(n_images) + 1)]


def _make_case(task: tuple) -> dict[str, bytes]:
    """One hard synthetic radiograph and its mask as PNG bytes (module level: runs in workers)."""
    from helpers.data import cxr
    from helpers.data.io import encode_png

    name, seed, size, image_rel, label_rel = task
    image, mask = cxr.generate_cxr(seed, size, 0, setting="hard")
    return {f"{image_rel}/{name}": encode_png(image), f"{label_rel}/{name}": encode_png(mask * 255)}


HANDOUT_README = """Challenge: segment {task}.

images/ holds {n} test images ({kind}). Hand in ONE folder for your team with
  - one binary mask per test image, named exactly like the image ({example}),
    the image's size, 0 = background and 1 or 255 = lung;
  - team.json: {{"team": "your team name", "method": "what you did, in a few lines"}}.
Check it before handing it in:  python -m helpers challenge check YOUR_FOLDER --images images
(lesson 09_challenge does all of this). Do not train on these images.
"""


def _private(folder: Path) -> None:
    """Make ``folder`` readable by its owner only (no-op where chmod means nothing)."""
    try:
        os.chmod(folder, 0o700)
    except OSError:
        pass


def make_test_set(seed: str, out: str | os.PathLike | None = None, n_images: int = DEFAULT_N_IMAGES,
                  size: int = config.CXR_IMAGE_SIZE, force: bool = False, workers: int = 2) -> Path:
    """Draw the hidden test set from the instructor's secret ``seed``.

    Writes ``out/handout/images/CHL_NNNN.png`` (the images, for the teams),
    ``out/handout/README.txt`` (the task and the submission format) and
    ``out/private/labels/CHL_NNNN.png`` (the masks, 0/255; ``private/`` readable by its owner
    only), with the synthetic generator's ``"hard"`` setting, one radiograph per patient.
    A rerun with the same arguments reuses the set; the files of another run are replaced,
    and files the generator did not write are never deleted unless ``force``.

    Args:
        seed: the secret, at least :data:`MIN_SEED_LENGTH` characters (e.g. from
            ``secrets.token_hex(8)``); keep it to make the same set again.
        out: the challenge folder (default :func:`challenge_dir`, ``data/challenge``).
        n_images: number of test images.
        size: side in pixels.
        force: delete whatever is in ``out`` first.
        workers: processes drawing the images (the result does not depend on it).

    Returns:
        ``out``.

    Raises:
        ChallengeError: the seed is too short or is the public practice seed.
        helpers.data.DatasetError: ``out`` holds files the generator did not write.
    """
    from helpers.data import cxr
    from helpers.data._store import generate_into

    seed = str(seed)
    if len(seed) < MIN_SEED_LENGTH or seed == PRACTICE_SEED:
        raise ChallengeError(
            f"The seed {'is the public practice seed' if seed == PRACTICE_SEED else f'has {len(seed)} characters'}: "
            f"anyone with the course could regenerate the labels. Use a secret of at least {MIN_SEED_LENGTH} "
            f"characters, e.g. leave --seed out and one is drawn for you (it is printed: keep it).")
    out = Path(out) if out is not None else challenge_dir()
    names = case_names(n_images)
    secret = _secret_int(seed)
    tasks = [(name, cxr.patient_seed(secret, i), int(size), "handout/images", "private/labels")
             for i, name in enumerate(names, start=1)]
    planned = [f"handout/images/{n}" for n in names] + [f"private/labels/{n}" for n in names]
    request = {"generator": "challenge_cxr_hard", "version": cxr.GENERATOR_VERSION,
               "params": {"n_images": int(n_images), "size": int(size), "seed_check": _seed_check(seed)}}
    for folder in (out, out / "private"):
        folder.mkdir(parents=True, exist_ok=True)
    _private(out / "private")
    generate_into(out, request=request, planned=planned + ["handout/README.txt"],
                  tasks=tasks + [("readme", len(names))], make=_HandoutMaker(), force=force,
                  desc="challenge test set", workers=workers if len(names) >= 20 else 1)
    _private(out / "private")
    return out


class _HandoutMaker:
    """``make`` of :func:`make_test_set`: the cases, and the hand-out README (picklable)."""

    def __call__(self, task):
        if task[0] == "readme":
            text = HANDOUT_README.format(task=TASK, n=task[1], kind="PNG, 8-bit grey",
                                         example=f"{NAME_PREFIX}_0001.png")
            return {"handout/README.txt": text.encode()}
        return _make_case(task)


def practice_set(n_images: int = PRACTICE_N_IMAGES, size: int = config.CXR_IMAGE_SIZE) -> tuple[Path, Path]:
    """The public practice set: ``n_images`` radiographs of the hidden set's kind (``"hard"``
    setting) from the public :data:`PRACTICE_SEED`, with their labels, generated on first use
    into ``data/challenge_practice/{images,masks}/``. Teams score themselves on it; the
    hidden set comes from another seed. Returns ``(images_dir, labels_dir)``.

    Args:
        n_images: the number of radiographs.
        size: their side in pixels.

    Returns:
        ``(images_dir, labels_dir)``.
    """
    from helpers.data import cxr
    from helpers.data._store import generate_into

    folder = config.data_dir() / "challenge_practice"
    names = case_names(n_images)
    secret = _secret_int(PRACTICE_SEED)
    tasks = [(name, cxr.patient_seed(secret, i), int(size), "images", "masks") for i, name in enumerate(names, 1)]
    request = {"generator": "challenge_practice", "version": cxr.GENERATOR_VERSION,
               "params": {"n_images": int(n_images), "size": int(size)}}
    planned = [f"{kind}/{n}" for n in names for kind in ("images", "masks")]
    generate_into(folder, request=request, planned=planned, tasks=tasks, make=_make_case,
                  desc="practice set", workers=2 if len(names) >= 20 else 1)
    return folder / "images", folder / "masks"


def test_set_from_folder(source: str | os.PathLike, seed: str, out: str | os.PathLike | None = None,
                         n_images: int | None = None, force: bool = False) -> Path:
    """Make the hidden test set from a real chest X-ray set prepared with ``python -m helpers
    data prepare`` (``source/images/*.png`` + ``source/masks/*.png``): ``n_images`` of its
    images (all by default), chosen and renamed ``CHL_NNNN.png`` in an order drawn from the
    secret ``seed``, into ``out/handout/images`` and ``out/private/labels`` (with
    ``private/names.json``, the original names). Teams must not have the source's labels: a
    public set's masks can be downloaded, so use one the teams have not got. Returns ``out``.

    Raises:
        ChallengeError: weak seed, too few images, or ``out`` already holds a test set
            (pass ``force=True`` to replace it).
        helpers.data.DatasetError: a file of ``source`` is missing or damaged.
    """
    from helpers.data.io import load_pairs, read_mask

    seed = str(seed)
    if len(seed) < MIN_SEED_LENGTH:
        raise ChallengeError(f"The seed has {len(seed)} characters: use a secret of at least {MIN_SEED_LENGTH}.")
    pairs = load_pairs(Path(source))
    count = len(pairs) if n_images is None else int(n_images)
    if not 1 <= count <= len(pairs):
        raise ChallengeError(f"{source} has {len(pairs)} image/mask pairs; asked for {count} test images.")
    out = Path(out) if out is not None else challenge_dir()
    images_dir, labels_dir = out / "handout" / "images", out / "private" / "labels"
    existing = [d for d in (images_dir, labels_dir) if d.is_dir() and any(d.iterdir())]
    if existing and not force:
        raise ChallengeError(f"{existing[0]} already holds files: nothing was changed. Choose another --out, "
                             f"or pass --force to replace the test set there.")
    order = np.random.default_rng(_secret_int(seed)).permutation(len(pairs))[:count]
    for folder in (images_dir, labels_dir):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{NAME_PREFIX}_*.png"):
            old.unlink()
    _private(out / "private")
    mapping = {}
    for name, index in zip(case_names(count), order):
        image_path, mask_path = pairs[int(index)]
        (images_dir / name).write_bytes(Path(image_path).read_bytes())
        from helpers.data.io import encode_png

        (labels_dir / name).write_bytes(encode_png(read_mask(mask_path) * 255))
        mapping[name] = Path(image_path).name
    (out / "private" / "names.json").write_text(json.dumps(mapping, indent=1) + "\n")
    (out / "handout" / "README.txt").write_text(HANDOUT_README.format(
        task=TASK, n=count, kind="PNG", example=f"{NAME_PREFIX}_0001.png"))
    return out


# ------------------------------------------------------------------------------ predicting

#: The baseline of lesson 09: lesson 04's recipe (:data:`helpers.training.CXR_RECIPE`) with
#: these changes, trained by :func:`helpers.training.train_cxr_reference` on the standard
#: synthetic set. Short on purpose: it must run in the lesson's budget and leave room to improve.
BASELINE_CHANGES = {"epochs": 8}


def image_files(images_dir: str | os.PathLike) -> list[Path]:
    """The PNG test images of a folder, sorted by name (hidden files left out).

    Args:
        images_dir: the folder of test images.

    Returns:
        The PNG files, sorted by name.

    Raises:
        ChallengeError: ``images_dir`` is not a folder, or holds no PNG image.
    """
    folder = Path(images_dir)
    if not folder.is_dir():
        raise ChallengeError(f"{folder} is not a folder of test images: use the images/ folder your instructor "
                             f"handed out, or challenge.practice_set().")
    files = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and _kind(p.name) == "png"]
    if not files:
        raise ChallengeError(f"{folder} holds no PNG image.")
    return files


def predict_images(model: keras.Model, images_dir: str | os.PathLike, threshold: float = 0.5,
                   postprocess: Callable[[np.ndarray], Any] | None = None,
                   batch_size: int = 16) -> tuple[list[str], list[np.ndarray]]:
    """Masks of a 2D model for every PNG image of ``images_dir``, at each image's size.

    Each image gets the lessons' preprocessing (:func:`helpers.generator.percentile_stretch`,
    resized to the model's input), the probabilities are resized back to the image
    (:func:`helpers.inference.resize_to`), thresholded at ``threshold`` and, if given,
    cleaned by ``postprocess`` (e.g. :func:`helpers.inference.postprocess`).

    Args:
        model: a Keras model of 2D grey images with one sigmoid output channel.
        images_dir: the folder of PNG test images.
        threshold: probabilities above it are foreground.
        postprocess: a function applied to each binary mask, or None.
        batch_size: images per forward pass.

    Returns:
        ``(names, masks)``: the image file names and uint8 ``{0, 1}`` masks ``(H, W)``.

    Raises:
        ChallengeError: ``images_dir`` is not a folder, or holds no PNG image.
    """
    from skimage.transform import resize

    from helpers import inference
    from helpers.data.io import read_image
    from helpers.generator import percentile_stretch

    files = image_files(images_dir)
    size = tuple(int(s) for s in model.input_shape[1:3])
    images = [read_image(path) for path in files]
    masks = []
    for start in range(0, len(images), int(batch_size)):
        chunk = images[start:start + int(batch_size)]
        x = np.stack([resize(percentile_stretch(image.astype(np.float32)), size, order=1, anti_aliasing=True,
                             preserve_range=True).astype(np.float32) for image in chunk])[..., None]
        probs = np.asarray(model.predict_on_batch(x), dtype=np.float32)[..., 0]
        for image, prob in zip(chunk, probs):
            mask = inference.threshold(inference.resize_to(prob, image.shape), threshold)
            masks.append(np.asarray(postprocess(mask), dtype=np.uint8) if postprocess is not None else mask)
    return [path.name for path in files], masks


# ------------------------------------------------------------------------------ reading safely

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission: ``code`` (``missing``, ``extra``, ``wrong_size``,
    ``not_binary``, ``corrupt``, ``symlink``, ``too_large``, ``not_a_file``, ``team_json``,
    ``not_a_folder``), the ``file`` it is about ("" for the folder) and a ``message`` that
    says what is wrong and how to fix it.
    """

    code: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.file + ': ' if self.file else ''}{self.message}"


class _Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".png"):
        return "png"
    if lower.endswith((".nii.gz", ".nii")):
        return "nifti"
    return None


def _read_untrusted(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of at
    most ``limit`` bytes; the file is opened without following links.
    """
    try:
        info = os.lstat(path)
    except OSError as error:
        raise _Refused("corrupt", f"cannot be read ({error.strerror}).") from None
    if stat.S_ISLNK(info.st_mode):
        raise _Refused("symlink", "is a symbolic link; links are refused (they could point at any file of this "
                                  "computer): copy the file itself into the folder.")
    if not stat.S_ISREG(info.st_mode):
        raise _Refused("not_a_file", "is not a regular file: remove it.")
    if info.st_size > limit:
        raise _Refused("too_large", f"has {info.st_size:,} bytes, more than the limit of {limit:,}: a mask "
                                    f"is small; save it as a binary 8-bit (or uint8 NIfTI) mask.")
    # no link followed, no wait on a FIFO swapped in since lstat; what was opened is checked again
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        handle = os.open(path, flags)
    except OSError as error:
        raise _Refused("symlink" if os.path.islink(path) else "corrupt", f"cannot be opened ({error.strerror}).") \
            from None
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise _Refused("not_a_file", "is not a regular file: remove it.")
        payload = stream.read(limit + 1)
    if len(payload) > limit:
        raise _Refused("too_large", f"grew beyond {limit:,} bytes while it was read: hand it in again.")
    return payload


def _decode_png(payload: bytes, expected: tuple[int, ...] | None) -> np.ndarray:
    """Pixels of a PNG file given as bytes: the declared size is checked against
    ``expected`` before the pixels are decoded (no decompression bomb).
    """
    import warnings

    from PIL import Image

    if not payload.startswith(PNG_SIGNATURE):
        raise _Refused("corrupt", "is not a PNG file (its first bytes are not PNG's signature): save the mask "
                                  "as PNG, e.g. with PIL.Image.fromarray(mask).save(path).")
    # The size is read from the IHDR chunk (always first, right after the signature) before
    # Pillow sees the file: a huge declared size is refused without decoding anything.
    if len(payload) < 24 or payload[12:16] != b"IHDR":
        raise _Refused("corrupt", "is not a complete PNG file (no IHDR header): the file is damaged or truncated; "
                                  "write it again.")
    width, height = int.from_bytes(payload[16:20], "big"), int.from_bytes(payload[20:24], "big")
    if expected is not None and (height, width) != tuple(expected):
        raise _Refused("wrong_size", f"is {width}x{height} pixels, but the test image is "
                                     f"{expected[1]}x{expected[0]}: resize the predicted mask to the image's "
                                     f"size (nearest neighbour, e.g. helpers.inference.resize_to).")
    if width * height > 80_000_000:
        raise _Refused("too_large", f"declares {width}x{height} pixels: far too many for a mask.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(payload), formats=["PNG"])
            image.load()
        if image.mode in ("RGB", "RGBA", "P", "LA", "PA"):
            image = image.convert("L")
        array = np.asarray(image)
    except _Refused:
        raise
    except Exception as error:  # noqa: BLE001 -- Pillow raises many types for damaged files
        raise _Refused("corrupt", f"cannot be decoded as PNG ({type(error).__name__}: {error}): the file is "
                                  f"damaged or truncated; write it again.") from None
    if array.ndim != 2:
        raise _Refused("wrong_size", f"has shape {array.shape}: a mask is one grey 2D image.")
    return array


def _decode_nifti(payload: bytes, expected: tuple[int, ...] | None) -> tuple[np.ndarray, tuple[float, ...]]:
    """Voxels and voxel sizes of a NIfTI file given as bytes (``.nii`` or gzip ``.nii.gz``);
    the gzip stream is inflated only up to what the expected shape needs.
    """
    import nibabel as nib

    if payload[:2] == b"\x1f\x8b":
        budget = 352 + 1024 * 1024 + (8 * int(np.prod(expected)) if expected else MAX_MASK_BYTES)
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(payload)) as stream:
                payload = stream.read(budget + 1)
        except (OSError, EOFError, ValueError) as error:
            raise _Refused("corrupt", f"is not a valid gzip stream ({error}): write the NIfTI file again.") from None
        if len(payload) > budget:
            raise _Refused("too_large", "inflates to more than a mask of the test volume's shape can need: write "
                                        "the mask as uint8 with the test volume's shape.")
    try:
        image = nib.Nifti1Image.from_bytes(payload)
    except Exception:  # noqa: BLE001 -- not NIfTI-1: try NIfTI-2, else refuse
        try:
            image = nib.Nifti2Image.from_bytes(payload)
        except Exception as error:  # noqa: BLE001 -- nibabel raises many types for damaged files
            raise _Refused("corrupt", f"cannot be read as NIfTI ({type(error).__name__}: {error}): write it "
                                      f"again with nibabel (helpers.data.save_nifti).") from None
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if expected is not None and shape != tuple(expected):
        raise _Refused("wrong_size", f"has shape {shape}, but the test volume is {tuple(expected)}: predict on "
                                     f"the volume's own grid (resample back, nearest neighbour).")
    try:
        array = np.asarray(image.dataobj).reshape(shape)
    except Exception as error:  # noqa: BLE001 -- truncated data
        raise _Refused("corrupt", f"holds fewer voxels than its header says ({type(error).__name__}): the "
                                  f"file is truncated; write it again.") from None
    zooms = tuple(float(z) for z in image.header.get_zooms()[:len(shape)])
    return array, zooms


def _binary(array: np.ndarray) -> np.ndarray:
    """``array`` as bool if it holds only 0/1 or only 0/255, else a ``not_binary`` refusal."""
    values = np.unique(array)
    found = set(values.tolist())
    if found <= {0, 1} or found <= {0, 255}:
        return np.asarray(array) > 0
    shown = ", ".join(f"{v:g}" for v in values[:6]) + (f" ... ({values.size} values)" if values.size > 6 else "")
    raise _Refused("not_binary", f"is not a binary mask: it holds the values {shown}. A mask holds only 0 and 1 "
                                 f"or 0 and 255: threshold the probabilities (e.g. (prob > 0.5)) before saving, "
                                 f"and never save masks as JPEG.")


def read_mask_file(path: str | os.PathLike, expected: tuple[int, ...] | None = None,
                   limit: int = MAX_MASK_BYTES) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read one untrusted mask file safely: ``(bool mask, voxel sizes or None)``.

    Only PNG and NIfTI are decoded; symlinks, special files, files over ``limit`` bytes and
    masks whose declared size is not ``expected`` are refused before their pixels are read.

    Raises:
        ValueError: with the :class:`Problem` code first (``"wrong_size: ..."``).
    """
    path = Path(path)
    try:
        return _read_mask(path, expected, limit)
    except _Refused as refused:
        raise ValueError(f"{refused.code}: {path.name} {refused.message}") from None


def _read_mask(path: Path, expected, limit):
    kind = _kind(path.name)
    payload = _read_untrusted(path, limit)
    if kind == "png":
        return _binary(_decode_png(payload, expected)), None
    if kind == "nifti":
        array, zooms = _decode_nifti(payload, expected)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise _Refused("not_binary", "holds NaN or infinite values: save a binary uint8 mask.")
        return _binary(array), zooms
    raise _Refused("extra", "is neither PNG nor NIfTI.")


# ------------------------------------------------------------------------------ test sets

@dataclass(frozen=True)
class TestCase:
    """One test image: its file ``name``, the mask ``shape`` expected, and the ``spacing``
    (voxel size per array axis, millimetres for NIfTI; None for PNG: distances in pixels).
    """

    __test__ = False            # not a pytest test class
    name: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...] | None = None

    @property
    def diagonal(self) -> float:
        """Length of the image's diagonal in the units of the spacing: the worst HD95."""
        spacing = self.spacing or (1.0,) * len(self.shape)
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(self.shape, spacing))))


@dataclass
class TestSet:
    """The test images that a submission must cover, and where their images and (for the
    instructor only) their labels are.
    """

    __test__ = False
    cases: list[TestCase]
    images_dir: Path | None = None
    labels_dir: Path | None = None

    @property
    def names(self) -> list[str]:
        """The file names of the test cases, in order."""
        return [case.name for case in self.cases]

    @property
    def kind(self) -> str:
        """The file kind of the cases: ``"png"`` or ``"nifti"``."""
        return _kind(self.cases[0].name) or "png"

    def case(self, name: str) -> TestCase:
        """The test case of file name ``name``."""
        return next(case for case in self.cases if case.name == name)


def _listing(folder: Path) -> list[Path]:
    """The files of a test-set folder that are images or masks (hidden files left out)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and _kind(p.name))


def read_test_set(labels_dir: str | os.PathLike | None = None, images_dir: str | os.PathLike | None = None) -> TestSet:
    """The test set from its labels (the instructor) or from its images only (a team).

    Names, shapes and spacings come from ``labels_dir`` when given (every label is checked
    to be a binary mask), else from the headers of ``images_dir``.

    Args:
        labels_dir: the folder of true masks (the instructor's), or None.
        images_dir: the folder of test images (a team's), or None.

    Returns:
        The :class:`TestSet`.

    Raises:
        ChallengeError: neither folder exists, it holds no PNG or NIfTI file, or it mixes both.
    """
    from helpers.data.io import nifti_shape, open_image, open_nifti

    source = Path(labels_dir) if labels_dir is not None else Path(images_dir) if images_dir is not None else None
    if source is None or not source.is_dir():
        raise ChallengeError(f"{source} is not a folder: give the test set's labels folder (the instructor's "
                             f"private/labels) or its images folder (handout/images).")
    files = _listing(source)
    kinds = {_kind(p.name) for p in files}
    if not files or len(kinds) > 1:
        raise ChallengeError(f"{source} holds {'no PNG or NIfTI file' if not files else 'both PNG and NIfTI files'}: "
                             f"a test set is one folder of PNG images (2D) or of NIfTI volumes (3D).")
    cases = []
    for path in files:
        if labels_dir is not None:
            mask, zooms = read_mask_file(path)
            cases.append(TestCase(path.name, tuple(mask.shape), zooms))
        elif _kind(path.name) == "png":
            with open_image(path) as image:
                cases.append(TestCase(path.name, (image.size[1], image.size[0])))
        else:
            shape = nifti_shape(path)
            while len(shape) > 3 and shape[-1] == 1:
                shape = shape[:-1]
            zooms = tuple(float(z) for z in open_nifti(path).header.get_zooms()[:len(shape)])
            cases.append(TestCase(path.name, shape, zooms))
    return TestSet(cases, images_dir=Path(images_dir) if images_dir is not None else None,
                   labels_dir=Path(labels_dir) if labels_dir is not None else None)


# ------------------------------------------------------------------------------ submissions

#: More stray entries than this in a folder are reported as one problem.
MAX_LISTED_EXTRAS = 8
#: Names in a submission folder that are ignored (operating-system metadata, notebook caches).
IGNORED_NAMES = {"Thumbs.db", "desktop.ini", "__MACOSX"}


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


def write_submission(masks: Sequence, names: Sequence[str], folder: str | os.PathLike, team: str,
                     method: str, force: bool = False) -> Path:
    """Write a team's submission: one PNG mask per test image (``names``: the test images'
    file names; masks ``(H, W)`` of 0/1 or bool at the image's size) and ``team.json``.
    Nothing is overwritten unless ``force`` (FileExistsError naming the file). Returns the folder.

    Args:
        masks: one binary mask per test image.
        names: the test images' file names, one per mask.
        folder: the submission folder (created).
        team: the team's name.
        method: one line on the team's method.
        force: replace an existing submission.

    Returns:
        ``folder``, as a ``Path``.

    Raises:
        ValueError: a team name or method that :func:`validate_submission` would refuse, or
            masks that :func:`helpers.inference.save_masks_png` refuses.
        FileExistsError: ``team.json`` or a mask file already exists and ``force`` is False.
    """
    from helpers import inference
    from helpers.data._store import atomic_write_bytes

    _team_fields({"team": team, "method": method})
    folder = Path(folder)
    info = folder / TEAM_FILE
    if info.exists() and not force:
        raise FileExistsError(f"{info} already exists: pass force=True to replace the submission, or choose "
                              f"another folder.")
    inference.save_masks_png(list(masks), list(names), folder, force=force)
    atomic_write_bytes(info, (json.dumps({"team": team, "method": method}, indent=1, ensure_ascii=False)
                              + "\n").encode("utf-8"))
    return folder


def _team_fields(data) -> tuple[str, str]:
    if not isinstance(data, dict):
        raise ValueError('must hold one JSON object, e.g. {"team": "Lung Rangers", "method": "lesson 04 recipe, '
                         '30 epochs"}.')
    team, method = data.get("team"), data.get("method")
    if not isinstance(team, str) or not team.strip():
        raise ValueError('has no "team" name: add "team": "your team name".')
    if len(team.strip()) > MAX_TEAM_NAME:
        raise ValueError(f'has a team name of {len(team.strip())} characters: keep it under {MAX_TEAM_NAME}.')
    if not isinstance(method, str) or not method.strip():
        raise ValueError('has no "method": add "method": "what you changed, in a few lines".')
    if len(method) > MAX_METHOD:
        raise ValueError(f'has a method of {len(method)} characters: keep it under {MAX_METHOD}.')
    return team.strip(), method.strip()


@dataclass
class TeamResult:
    """A validated (and, with labels, scored) submission.

    ``folder``: the team's folder name (its identifier); ``team`` and ``method`` from
    ``team.json`` (the folder's name when missing); ``problems``: what is wrong (empty when
    valid); ``dice`` and ``hd95``: per test image, in the order of the test set (empty when
    not scored); ``masks``: the masks read (kept for the leaderboard's pictures).
    """

    folder: str
    team: str
    method: str = ""
    problems: list[Problem] = field(default_factory=list)
    dice: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hd95: np.ndarray = field(default_factory=lambda: np.zeros(0))
    masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    fingerprint: tuple = ()

    @property
    def valid(self) -> bool:
        """True when the submission has no problem."""
        return not self.problems

    @property
    def scored(self) -> bool:
        """True when the submission is valid and has at least one scored case."""
        return self.valid and self.dice.size > 0


def _shown(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def validate_submission(folder: str | os.PathLike, test_set: TestSet, keep_masks: bool = True) -> TeamResult:
    """Check one team's folder against the test set without executing anything in it.

    Every problem is collected (not only the first): missing masks, extra files or folders,
    masks of the wrong size, non-binary masks, corrupt or non-PNG/NIfTI files, symlinks,
    special files, oversized files, and a missing or malformed ``team.json``. Hidden files
    (``.DS_Store``, ``.ipynb_checkpoints``) and :data:`IGNORED_NAMES` are ignored.

    Args:
        folder: the team's submission folder.
        test_set: the test set it answers.
        keep_masks: keep the masks read in the result.

    Returns:
        A :class:`TeamResult` with the team's name and method, its problems and (if
        ``keep_masks``) the masks read, as bool arrays by name.
    """
    folder = Path(folder)
    result = TeamResult(folder=folder.name, team=folder.name)
    try:
        info = os.lstat(folder)
    except OSError:
        result.problems.append(Problem("not_a_folder", "", f"{folder} does not exist."))
        return result
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        result.problems.append(Problem("not_a_folder", "", "the submission is not a folder (or is a link to one): "
                                                           "hand in one plain folder of masks."))
        return result
    entries = {entry.name: entry for entry in sorted(os.scandir(folder), key=lambda e: e.name)
               if not _ignored(entry.name)}
    expected = {case.name: case for case in test_set.cases}
    # team.json
    if TEAM_FILE in entries:
        try:
            payload = _read_untrusted(folder / TEAM_FILE, MAX_TEAM_JSON_BYTES)
            data = json.loads(payload.decode("utf-8"))
            result.team, result.method = _team_fields(data)
        except _Refused as refusal:
            result.problems.append(Problem(refusal.code, TEAM_FILE, refusal.message))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            result.problems.append(Problem("team_json", TEAM_FILE, f"is not valid JSON ({error}): write it as "
                                                                   f'{{"team": "...", "method": "..."}}.'))
        except ValueError as error:
            result.problems.append(Problem("team_json", TEAM_FILE, str(error)))
    else:
        result.problems.append(Problem("team_json", TEAM_FILE, 'is missing: add team.json with {"team": "your team '
                                                               'name", "method": "what you did"}.'))
    # extra entries
    for name, entry in entries.items():
        if name == TEAM_FILE or name in expected:
            continue
        if entry.is_symlink():
            result.problems.append(Problem("symlink", name, "is a symbolic link; links are refused: hand in the "
                                                            "files themselves."))
            continue
        if entry.is_dir(follow_symlinks=False):
            inner = sum(1 for sub in Path(entry.path).iterdir() if sub.name in expected)
            hint = (f" (it holds {inner} masks named like test images: put the masks at the top of the team "
                    f"folder, not in a sub-folder)" if inner else "")
            result.problems.append(Problem("extra", name + "/", f"is a folder; a submission holds only masks and "
                                                                f"{TEAM_FILE}{hint}."))
            continue
        near = next((n for n in expected if n.lower() == name.lower() or Path(n).stem in name), None)
        hint = f" (did you mean {near}? names must match the test images exactly)" if near else ""
        result.problems.append(Problem("extra", name, f"is not a mask of a test image{hint}: remove it, or rename "
                                                      f"it to its test image's name."))
    extras = [p for p in result.problems if p.code == "extra"]
    if len(extras) > MAX_LISTED_EXTRAS:       # a folder of thousands of stray files: one line, not thousands
        result.problems = [p for p in result.problems if p.code != "extra"] + [Problem(
            "extra", _shown([p.file for p in extras]), f"({len(extras)} entries) are not masks of test images: a "
                                                       f"submission holds only the masks and {TEAM_FILE}.")]
    # missing masks
    missing = [name for name in expected if name not in entries]
    if missing:
        result.problems.append(Problem("missing", _shown(missing), f"{len(missing)} of {len(expected)} test images "
                                                                   f"have no mask: predict every test image."))
    # the masks themselves; the same problem in several files is reported once, with their names
    refused: dict[tuple[str, str], list[str]] = {}
    for name, case in expected.items():
        if name not in entries:
            continue
        try:
            mask, _ = _read_mask(folder / name, case.shape, MAX_MASK_BYTES)
        except _Refused as problem:
            refused.setdefault((problem.code, problem.message), []).append(name)
            continue
        if keep_masks:
            result.masks[name] = mask
    for (code, message), names in refused.items():
        result.problems.append(Problem(code, _shown(names), message if len(names) == 1 else
                                       f"({len(names)} files) {message}"))
    return result


def check_submission(folder: str | os.PathLike, images_dir: str | os.PathLike) -> TeamResult:
    """The check a team runs before handing in: :func:`validate_submission` against the test
    images' folder. Prints one success line, or raises AssertionError listing every problem
    with its fix.

    Args:
        folder: the team's submission folder.
        images_dir: the folder of test images.

    Returns:
        The :class:`TeamResult` of :func:`validate_submission`.

    Raises:
        AssertionError: the submission has problems; the message lists each with its fix.
        ChallengeError: the test images' folder cannot be read as a test set.
    """
    test_set = read_test_set(images_dir=images_dir)
    result = validate_submission(folder, test_set, keep_masks=False)
    if result.problems:
        lines = "\n".join(f"  - {problem}" for problem in result.problems)
        raise AssertionError(f"The submission in {folder} is not valid ({len(result.problems)} problem(s)); "
                             f"the scorer would reject it:\n{lines}")
    print(f"✓ submission of team {result.team!r}: {len(test_set.cases)} masks, named and sized like the test "
          f"images, binary; {TEAM_FILE} complete. Hand in the folder {Path(folder).name}/.")
    return result


# ------------------------------------------------------------------------------ scoring

def load_labels(test_set: TestSet) -> dict[str, np.ndarray]:
    """The true masks of the test set (from its ``labels_dir``), bool arrays by name.

    Args:
        test_set: a test set read with its labels (:func:`read_test_set`).

    Returns:
        ``{image name: bool mask}``.

    Raises:
        ChallengeError: the test set has no labels folder.
        ValueError: a label file is refused (:func:`read_mask_file`).
    """
    if test_set.labels_dir is None:
        raise ChallengeError("This test set has no labels folder: scoring needs the instructor's private/labels.")
    return {case.name: read_mask_file(test_set.labels_dir / case.name, case.shape)[0] for case in test_set.cases}


def score_case(truth: np.ndarray, prediction: np.ndarray, case: TestCase) -> tuple[float, float]:
    """``(Dice, HD95)`` of one test image by :data:`METRIC_RULE`: HD95 in the case's units
    (:func:`helpers.metrics.hausdorff_distance`), an empty prediction (or truth) scoring the
    image diagonal and two empty masks 0.

    Args:
        truth: the true binary mask.
        prediction: the predicted binary mask, the same shape.
        case: the test case (its spacing and diagonal).

    Returns:
        ``(dice, hd95)``.
    """
    from helpers import metrics

    dice = metrics.dice_numpy(truth, prediction)
    hd95 = metrics.hausdorff_distance(truth, prediction, spacing=case.spacing)
    if math.isnan(hd95):
        hd95 = 0.0
    elif math.isinf(hd95):
        hd95 = case.diagonal
    return float(dice), float(hd95)


def _fingerprint(folder: Path) -> tuple:
    """What changes when a team hands in again: names, sizes and times of its files."""
    try:
        return tuple(sorted((e.name, e.stat(follow_symlinks=False).st_size, e.stat(follow_symlinks=False).st_mtime_ns)
                            for e in os.scandir(folder)))
    except OSError:
        return ()


def score_submission(folder: str | os.PathLike, test_set: TestSet, labels: dict[str, np.ndarray]) -> TeamResult:
    """Validate one team's folder and, if valid, score each test image (:func:`score_case`)."""
    folder = Path(folder)
    fingerprint = _fingerprint(folder)
    result = validate_submission(folder, test_set)
    result.fingerprint = fingerprint
    if result.valid:
        scores = np.array([score_case(labels[case.name], result.masks[case.name], case) for case in test_set.cases])
        result.dice, result.hd95 = scores[:, 0], scores[:, 1]
    return result


def team_folders(submissions: str | os.PathLike) -> list[Path]:
    """The team folders of a submissions folder (every entry but hidden files), sorted."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise ChallengeError(f"{submissions} is not a folder: put one folder per team in it "
                             f"(e.g. data/challenge/submissions/<team>/).")
    return sorted(p for p in submissions.iterdir() if not _ignored(p.name))


def score_submissions(submissions: str | os.PathLike, test_set: TestSet, labels: dict[str, np.ndarray] | None = None,
                      cache: dict[str, TeamResult] | None = None) -> list[TeamResult]:
    """Validate and score every team folder of ``submissions``; a broken submission is
    reported in its :class:`TeamResult` and never stops the others. ``cache`` (folder name
    -> result) skips folders whose files have not changed since they were scored.

    Args:
        submissions: the folder of team folders.
        test_set: the test set.
        labels: the true masks by name; None reads them (:func:`load_labels`).
        cache: folder name -> result of an earlier scoring, updated in place; or None.

    Returns:
        One :class:`TeamResult` per team folder.

    Raises:
        ChallengeError: ``labels`` is None and the test set has no labels folder.
    """
    labels = labels if labels is not None else load_labels(test_set)
    results = []
    for folder in team_folders(submissions):
        cached = (cache or {}).get(folder.name)
        if cached is not None and cached.fingerprint and cached.fingerprint == _fingerprint(folder):
            results.append(cached)
            continue
        try:
            result = score_submission(folder, test_set, labels)
        except Exception as error:  # noqa: BLE001 -- one team's folder never stops the scoring of the others
            result = TeamResult(folder=folder.name, team=folder.name,
                                problems=[Problem("unreadable", "", f"could not be scored ({type(error).__name__}: "
                                                                    f"{error}).")])
        results.append(result)
        if cache is not None:
            cache[folder.name] = result
    return results


# ------------------------------------------------------------------------------ ranking

@dataclass
class Ranking:
    """The ranking of the scored teams (in ``teams`` order, best place first).

    ``score``: mean rank (lower is better); ``place``: 1 + the number of teams that beat the
    team in at least :data:`CONFIDENCE` of the bootstrap resamples (equal places are ties);
    ``interval``: the 2.5th-97.5th percentile of its place over the resamples; ``dice`` and
    ``hd95``: ``(mean, low, high)`` with bootstrap 95 % intervals; ``beats[i, j]``: share of
    the resamples in which team ``i`` has a better score than team ``j``.
    """

    teams: list[TeamResult]
    score: np.ndarray
    place: np.ndarray
    interval: np.ndarray
    dice: np.ndarray
    hd95: np.ndarray
    beats: np.ndarray

    def tied(self, index: int) -> bool:
        """True if another team shares this team's place."""
        return int(np.sum(self.place == self.place[index])) > 1


def _ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per image (columns) the rank of each team (rows), 1 = best, ties share the mean rank."""
    from scipy.stats import rankdata

    return rankdata(-values if higher_is_better else values, axis=0, method="average")


def rank(results: Sequence[TeamResult], n_bootstrap: int = BOOTSTRAP, seed: int = 0) -> Ranking:
    """Rank the scored teams by :data:`RANKING_RULE`.

    Args:
        results: team results; only the scored ones (:attr:`TeamResult.scored`) are ranked.
        n_bootstrap: bootstrap resamples of the test images.
        seed: of the resampling (fixed, so that the same submissions give the same page).

    Returns:
        A :class:`Ranking` with the teams in order of place, then score.
    """
    teams = [r for r in results if r.scored]
    if not teams:
        empty = np.zeros(0)
        return Ranking([], empty, empty.astype(int), np.zeros((0, 2), int), np.zeros((0, 3)), np.zeros((0, 3)),
                       np.zeros((0, 0)))
    dice = np.stack([t.dice for t in teams])          # (teams, images)
    hd95 = np.stack([t.hd95 for t in teams])
    per_image = (_ranks(dice, True) + _ranks(hd95, False)) / 2.0
    score = per_image.mean(axis=1)
    n_teams, n_images = dice.shape
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n_images, size=(int(n_bootstrap), n_images))
    boot = per_image[:, samples].mean(axis=2)          # (teams, resamples)
    beats = (boot[:, None, :] < boot[None, :, :]).mean(axis=2)
    place = 1 + (beats >= CONFIDENCE).sum(axis=0)
    from scipy.stats import rankdata

    boot_place = rankdata(boot, axis=0, method="min")
    interval = np.stack([np.percentile(boot_place, 2.5, axis=1), np.percentile(boot_place, 97.5, axis=1)], axis=1)
    interval = np.rint(interval).astype(int)

    def with_interval(values: np.ndarray) -> np.ndarray:
        means = values[:, samples].mean(axis=2)
        return np.stack([values.mean(axis=1), np.percentile(means, 2.5, axis=1),
                         np.percentile(means, 97.5, axis=1)], axis=1)

    dice_ci, hd_ci = with_interval(dice), with_interval(hd95)
    order = sorted(range(n_teams), key=lambda i: (place[i], score[i], teams[i].team.lower()))
    pick = np.array(order)
    return Ranking([teams[i] for i in order], score[pick], place[pick], interval[pick], dice_ci[pick], hd_ci[pick],
                   beats[np.ix_(pick, pick)])


# ------------------------------------------------------------------------------ the command line

def _labels_and_images(args) -> tuple[Path, Path | None]:
    root = Path(args.challenge) if args.challenge else challenge_dir()
    labels = Path(args.labels) if args.labels else root / "private" / "labels"
    images = Path(args.images) if args.images else root / "handout" / "images"
    if not labels.is_dir():
        raise ChallengeError(f"No labels in {labels}: make the test set first (python -m helpers challenge make), "
                             f"or point --labels at the folder of true masks.")
    return labels, images if images.is_dir() else None


def write_leaderboard(results: Sequence[TeamResult], ranking: Ranking, test_set: TestSet,
                      labels: dict[str, np.ndarray] | None, out: str | os.PathLike, refresh: int | None = None,
                      force: bool = False) -> Path:
    """Write the leaderboard (``index.html``, ``leaderboard.csv``, ``per_image.csv``) into
    ``out`` with :func:`helpers.challenge_page.write_leaderboard`, with this challenge's task
    and rules. ``labels`` (the true masks) draw the hardest images; ``refresh`` makes the page
    reload itself every so many seconds. Returns the page's path.

    Args:
        results: the scored teams.
        ranking: their ranking.
        test_set: the test set.
        labels: the true masks by name, or None.
        out: the folder to write into.
        refresh: seconds between reloads of the page, or None.
        force: replace an ``index.html`` the scorer did not write.

    Returns:
        The path of ``index.html``.

    Raises:
        FileExistsError: ``out/index.html`` was not written by the scorer and ``force`` is False.
    """
    from helpers import challenge_page

    return challenge_page.write_leaderboard(results, ranking, test_set, labels, out, refresh=refresh, force=force,
                                            task=TASK, metric_rule=METRIC_RULE, ranking_rule=RANKING_RULE)


def _score_once(submissions: Path, test_set: TestSet, labels: dict, out: Path, cache: dict,
                refresh: int | None = None, force: bool = False) -> tuple[list[TeamResult], Ranking, Path]:
    results = score_submissions(submissions, test_set, labels, cache=cache)
    ranking = rank(results)
    page = write_leaderboard(results, ranking, test_set, labels, out, refresh=refresh, force=force)
    return results, ranking, page


def _print_summary(results: list[TeamResult], ranking: Ranking, page: Path) -> None:
    for i, team in enumerate(ranking.teams):
        tie = "=" if ranking.tied(i) else " "
        print(f"  {ranking.place[i]:>2}{tie} {team.team[:30]:<30} Dice {ranking.dice[i, 0]:.3f}  "
              f"HD95 {ranking.hd95[i, 0]:6.2f}  mean rank {ranking.score[i]:.2f}  "
              f"(place {ranking.interval[i, 0]}-{ranking.interval[i, 1]})")
    for result in results:
        if not result.valid:
            print(f"  INVALID {result.folder}: " + "; ".join(str(p) for p in result.problems[:3])
                  + (f" (+{len(result.problems) - 3} more)" if len(result.problems) > 3 else ""))
    print(f"Leaderboard: {page}  (CSV beside it)")


def watch(submissions: str | os.PathLike, test_set: TestSet, out: str | os.PathLike, interval: float = 10.0,
          rounds: int | None = None, force: bool = False) -> int:
    """Re-score whenever a team folder appears or changes, and rewrite the leaderboard (the
    page reloads itself every ``interval`` seconds, at least 5). A folder is scored once its
    files have stayed unchanged for one ``interval`` (a copy in progress is not scored half
    done). Stops after ``rounds`` polls (None: at Ctrl-C). Returns 0.
    """
    submissions, out = Path(submissions), Path(out)
    labels = load_labels(test_set)
    cache: dict[str, TeamResult] = {}
    seen: dict[str, tuple] | None = None
    scored_state: dict[str, tuple] | None = None
    done = 0
    try:
        while rounds is None or done < rounds:
            state = {p.name: _fingerprint(p) for p in team_folders(submissions)}
            if state == seen and state != scored_state:
                results, ranking, page = _score_once(submissions, test_set, labels, out, cache,
                                                     refresh=max(5, int(interval)), force=force)
                scored_state = state
                print(f"{time.strftime('%H:%M:%S')}  {len(ranking.teams)} team(s) ranked, "
                      f"{sum(not r.valid for r in results)} invalid: {page}", flush=True)
            seen = state
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)
    except KeyboardInterrupt:
        print("stopped watching.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers challenge",
                                     description="The hackathon finale: hidden test set, scoring, leaderboard.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="action")
    make = sub.add_parser("make", help="draw the hidden test set from a secret seed (synthetic, hard setting)")
    make.add_argument("--seed", help=f"secret text, >= {MIN_SEED_LENGTH} characters (default: a random one, printed)")
    make.add_argument("--out", help="challenge folder (default data/challenge)")
    make.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES)
    make.add_argument("--size", type=int, default=config.CXR_IMAGE_SIZE)
    make.add_argument("--force", action="store_true", help="delete what is in --out first")
    real = sub.add_parser("from-folder", help="make the test set from a prepared real chest X-ray set")
    real.add_argument("source", help="folder with images/ and masks/ (python -m helpers data prepare)")
    real.add_argument("--seed", help="secret text (default: a random one, printed)")
    real.add_argument("--out")
    real.add_argument("--n-images", type=int)
    real.add_argument("--force", action="store_true")
    check = sub.add_parser("check", help="validate one team's submission folder against the test images")
    check.add_argument("folder")
    check.add_argument("--images", help="the test images (default data/challenge/handout/images)")
    score = sub.add_parser("score", help="validate, score and rank every team folder; write the leaderboard")
    score.add_argument("submissions", nargs="?", help="folder of team folders (default data/challenge/submissions)")
    score.add_argument("--challenge", help="challenge folder (default data/challenge)")
    score.add_argument("--labels", help="true masks (default <challenge>/private/labels)")
    score.add_argument("--images", help="test images, for the pictures (default <challenge>/handout/images)")
    score.add_argument("--out", help="leaderboard folder (default <challenge>/leaderboard)")
    score.add_argument("--watch", action="store_true", help="re-score as submissions arrive (Ctrl-C stops)")
    score.add_argument("--interval", type=float, default=10.0, help="seconds between polls with --watch")
    score.add_argument("--force", action="store_true", help="replace a leaderboard page the scorer did not write")
    sub.add_parser("baseline", help="run the capstone notebook (its baseline and submission) headless: course 09")
    return parser


def _new_seed(seed: str | None) -> str:
    if seed:
        return seed
    seed = secrets.token_hex(8)
    print(f"Secret seed: {seed}   (keep it private; the same seed makes the same test set)")
    return seed


def _import_metrics_quietly() -> None:
    """Import :mod:`helpers.metrics` (and with it TensorFlow) with the process's stderr sent
    to /dev/null: TensorFlow's C++ runtime prints start-up lines however quiet it is asked
    to be, and the scorer's console should show only the scores.
    """
    if "helpers.metrics" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
            import helpers.metrics  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers challenge ACTION ...``; returns the exit code (0 done; 1 some
    submission is invalid or a check failed; 2 the command could not run).
    """
    args = _parser().parse_args(argv)
    if args.action == "score":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _import_metrics_quietly()
    try:
        if args.action == "make":
            out = make_test_set(_new_seed(args.seed), args.out, n_images=args.n_images, size=args.size,
                                force=args.force)
            print(f"Test set: {args.n_images} images in {out / 'handout' / 'images'} (hand out {out / 'handout'}); "
                  f"labels in {out / 'private' / 'labels'} (keep them). Teams put their folders in "
                  f"{out / 'submissions'}.")
            (out / "submissions").mkdir(exist_ok=True)
            return 0
        if args.action == "from-folder":
            out = test_set_from_folder(args.source, _new_seed(args.seed), args.out, args.n_images, force=args.force)
            print(f"Test set from {args.source}: images in {out / 'handout' / 'images'}, labels in "
                  f"{out / 'private' / 'labels'}.")
            (out / "submissions").mkdir(exist_ok=True)
            return 0
        if args.action == "check":
            images = Path(args.images) if args.images else challenge_dir() / "handout" / "images"
            try:
                check_submission(args.folder, images)
            except AssertionError as error:
                print(error)
                return 1
            return 0
        if args.action == "score":
            labels_dir, images_dir = _labels_and_images(args)
            root = Path(args.challenge) if args.challenge else challenge_dir()
            submissions = Path(args.submissions) if args.submissions else root / "submissions"
            out = Path(args.out) if args.out else root / "leaderboard"
            test_set = read_test_set(labels_dir, images_dir)
            if args.watch:
                print(f"Watching {submissions} every {args.interval:g} s; leaderboard in {out} (Ctrl-C stops).")
                return watch(submissions, test_set, out, args.interval, force=args.force)
            results, ranking, page = _score_once(submissions, test_set, load_labels(test_set), out, {},
                                                 force=args.force)
            print(f"{len(results)} submission(s), {len(ranking.teams)} ranked on {len(test_set.cases)} test images.")
            _print_summary(results, ranking, page)
            return 0 if all(r.valid for r in results) else 1
        if args.action == "baseline":
            from helpers.course import CAPSTONE_LESSONS
            from helpers.tools import runner

            return runner.main(list(CAPSTONE_LESSONS))
    except (ChallengeError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:   # DatasetError and friends: the message names the file and the fix
        print(f"error: {error}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled action {args.action}")

