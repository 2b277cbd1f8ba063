"""The GPU decoding path: DALI or nvImageCodec decodes on the GPU, the CPU steps finish
each image.

A batch decoder of the registry (``rsna_pkg.dicom.backend``: DALI's ``DaliDecoder``,
nvImageCodec's ``NvImageCodecDecoder``) decodes a batch of frames on the
GPU to stored values (each with its own per-file CPU fallback for what it cannot take). What
follows is ``preprocess``'s full-decode route (``preprocess_stored``), step for step and
with its functions: box on an area-downsampled probe, the crop from block means at the level
the crop allows, window, flip, resize/pad, quantise. These
steps run on the CPU in a thread pool (numpy and Pillow release the GIL); no torch twin
of the crop/resize exists, and windowing only the crop (as the CPU path does) keeps the
min-max fallback identical. Both decode full resolution only (neither exposes J2K
resolution levels), so for J2K checkpoints saved with ``reduce=True`` the pixels differ
slightly from the CPU path's reduced decode (block means, not the wavelet's levels); for
every other syntax they are the CPU path's to the bit.
A batch the decoder cannot handle at all (an unreadable file) goes through ``preprocess_file``
file by file. A producer thread keeps ``prefetch`` batches ready ahead of the model.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rsna_pkg.dicom.pixels import stored_dtype
from rsna_pkg.infer.stream import Batch, ImageItem, collate_items, load_item

_DONE = object()


def finish_decoded(stored: np.ndarray, header: Any, cfg: Any) -> np.ndarray:
    """``preprocess``'s full-decode route applied to stored values decoded elsewhere."""
    from rsna_pkg.preprocess.pipeline import preprocess_stored

    return preprocess_stored(stored, header, cfg, {})[0]


def _finish_one(index: int, stored: Any, header: Any, cfg: Any, path: Path) -> ImageItem:
    start = time.perf_counter()
    try:
        host = stored if isinstance(stored, np.ndarray) else stored.cpu().numpy()
        # int32 on the GPU -> the header's dtype, as the CPU path holds the same values
        image = finish_decoded(host.astype(stored_dtype(header), copy=False), header, cfg)
    except Exception:  # noqa: BLE001 - fall back to the CPU path for this file
        return load_item(index, path, cfg)
    return ImageItem(index, image, "", time.perf_counter() - start)


def decode_chunk(
    decoder: Any, indices: Sequence[int], paths: Sequence[Path], cfg: Any, pool: ThreadPoolExecutor
) -> Batch:
    """One batch: triage missing files, batch-decode the rest, finish on the CPU pool."""
    items: list[ImageItem] = []
    todo = []
    for i in indices:
        p = paths[i]
        if not p.is_file() or p.stat().st_size == 0:
            items.append(load_item(i, p, cfg))  # records "missing" / "zero-byte" reasons
        else:
            todo.append(i)
    try:
        arrays, decoded = decoder.decode_items([paths[i] for i in todo]) if todo else ([], [])
    except Exception:  # noqa: BLE001 - one unreadable file fails the decoder's whole batch
        items += list(pool.map(lambda i: load_item(i, paths[i], cfg), todo))
    else:
        jobs = [
            pool.submit(_finish_one, i, arr, it.header, cfg, paths[i])
            for i, arr, it in zip(todo, arrays, decoded, strict=True)
        ]
        items += [j.result() for j in jobs]
    items.sort(key=lambda it: it.index)
    return collate_items(items)


def iterate_gpu_batches(
    paths: Sequence[Path],
    config: Any,
    batch_size: int,
    workers: int,
    prefetch: int = 2,
    decoder: str = "dali",
    device: str = "auto",
) -> Iterator[Batch]:
    """Batches in row order, decoded by the registry's batch ``decoder`` ``prefetch`` batches
    ahead; ``device`` "auto" is its GPU when CUDA is usable, "cpu" runs the same route through
    its CPU codecs (tests)."""
    from rsna_pkg.dicom.backend import get_decoder

    dec = get_decoder(decoder).batch_decoder(  # type: ignore[attr-defined]
        batch_size=batch_size, device=device, threads=max(1, workers)
    )
    return iterate_decoder_batches(paths, config, batch_size, workers, dec, prefetch)


def iterate_decoder_batches(
    paths: Sequence[Path],
    config: Any,
    batch_size: int,
    workers: int,
    decoder: Any,
    prefetch: int = 2,
) -> Iterator[Batch]:
    """Batches in row order: ``decoder.decode_items`` (DALI or nvImageCodec) runs in a
    producer thread ``prefetch`` batches ahead, ``workers`` threads finish the images."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for start in range(0, len(paths), batch_size):
                    if stop.is_set():
                        return
                    idx = range(start, min(start + batch_size, len(paths)))
                    ready.put(decode_chunk(decoder, idx, paths, config, pool))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            ready.put(exc)
        finally:
            ready.put(_DONE)

    thread = threading.Thread(target=produce, name="gpu-decode", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        thread.join()
