"""Video in: probe a video file or a folder of frame images, and decode its frames with their timestamps.

Video files are read with PyAV (FFmpeg bundled in the wheel). Every frame keeps its presentation timestamp, so
variable-frame-rate sources keep their timing; a damaged, truncated, empty or frameless input is a VideoError whose
message is one line naming the file. Writing: nst_tf.video_write; stylizing the frames: nst_tf.video.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from nst_tf.images import ImageError, load_image, to_uint8

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # nst_tf.data's, without TF
VFR_TOLERANCE = 0.02  # frame intervals varying by more than 2 % (and one tick) mean a variable frame rate


class VideoError(ValueError):
    """A bad input or output video; its message is one line naming the file."""


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message, without FFmpeg's errno and file-name decorations."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0].strip()


# -- probing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a video file or frames folder holds: size, timing, frame count (None if unknown), audio."""

    path: str
    width: int
    height: int
    time_base: Fraction  # of the timestamps that read_frames() yields
    rate: Fraction  # average frames per second
    frame_count: int | None
    duration: float | None  # seconds, from the container header
    has_audio: bool
    is_folder: bool
    variable_rate: tuple[float, float] | None = None  # (min, max) fps when the frame rate is variable
    files: tuple[str, ...] = ()  # the frame images of a folder, in order


def _natural_key(name: str) -> list:
    """Sort key: 'frame_10' after 'frame_9'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: str) -> list[str]:
    """The image files directly in `folder`, in natural order."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith(".")]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def probe(path: str, folder_fps: float = 25.0) -> VideoInfo:
    """Inspect a video file or a folder of frames without decoding it; VideoError if unusable."""
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return _probe_folder(path, folder_fps)
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        with av.open(path) as container:
            return _probe_container(path, container)
    except VideoError:
        raise
    except av.error.EOFError:
        raise VideoError(f"{path}: no video data (the file ends before the first frame)") from None
    except av.error.InvalidDataError:
        raise VideoError(f"{path}: not a readable video (unknown format, or damaged or truncated)") from None
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise VideoError(f"{path}: cannot read video ({error_line(exc)})") from None


def _probe_folder(path: str, fps: float) -> VideoInfo:
    """A folder of frames: its first frame gives the size, `fps` the rate."""
    if fps <= 0:
        raise VideoError(f"{path}: frame rate must be positive, got {fps}")
    files = frame_files(path)
    if not files:
        raise VideoError(f"{path}: no frame images (looked for {', '.join(FRAME_EXTENSIONS)})")
    height, width = load_image(files[0]).shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    return VideoInfo(path, width, height, 1 / rate, rate, len(files), len(files) / float(rate), False, True,
                     files=tuple(files))


def _probe_container(path: str, container: av.container.InputContainer) -> VideoInfo:
    """Read the header and the packet timestamps (demuxing only, no decoding)."""
    if not container.streams.video:
        raise VideoError(f"{path}: no video stream (or a video stream without frames)")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise VideoError(f"{path}: video stream has no frame size")
    has_audio = bool(container.streams.audio)
    duration = container.duration / av.time_base if container.duration else None
    stamps = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
    if not stamps:
        raise VideoError(f"{path}: no video frames")
    if stream.frames and len(stamps) < stream.frames:
        raise VideoError(f"{path}: truncated or damaged (the header lists {stream.frames} frames, "
                         f"the file holds {len(stamps)})")
    time_base = stream.time_base or Fraction(1, 90000)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    variable = None
    if len(stamps) > 2:
        deltas = np.diff(np.asarray(stamps, np.int64))
        deltas = deltas[deltas > 0]
        if deltas.size and deltas.max() > deltas.min() * (1 + VFR_TOLERANCE) + 1:
            variable = (float(1 / (deltas.max() * time_base)), float(1 / (deltas.min() * time_base)))
        span = (stamps[-1] - stamps[0]) * time_base
        if span > 0:
            rate = Fraction(len(stamps) - 1) / span if variable else rate
    count = len(stamps)
    return VideoInfo(path, width, height, time_base, Fraction(rate).limit_denominator(100000), count, duration,
                     has_audio, False, variable)


# -- reading -------------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One decoded frame: uint8 RGB [H, W, 3] at the processing size, and its timestamp in info.time_base."""

    image: np.ndarray
    pts: int


def resize_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 frame (area filter when shrinking, cubic when enlarging)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def read_frames(info: VideoInfo, width: int, height: int) -> Iterator[Frame]:
    """Yield every frame at (width, height); VideoError on decoding errors, truncation or no frames."""
    if info.is_folder:
        yield from _read_folder(info, width, height)
    else:
        yield from _read_container(info, width, height)


def _read_folder(info: VideoInfo, width: int, height: int) -> Iterator[Frame]:
    """Frames from image files; all must have the first one's size."""
    for index, path in enumerate(info.files):
        try:
            image = load_image(path)
        except ImageError as exc:
            raise VideoError(str(exc)) from None
        if image.shape[:2] != (info.height, info.width):
            raise VideoError(f"{path}: frame is {image.shape[1]}x{image.shape[0]} px, the first frame "
                             f"{info.width}x{info.height} px")
        yield Frame(resize_frame(to_uint8(image), width, height), index)


def _read_container(info: VideoInfo, width: int, height: int) -> Iterator[Frame]:
    """Decode the first video stream; timestamps made strictly increasing."""
    count, last_pts = 0, None
    step = max(1, round(1 / (info.rate * info.time_base))) if info.rate else 1
    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + step)
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1
                last_pts = pts
                count += 1
                image = frame.to_ndarray(format="rgb24")
                yield Frame(resize_frame(image, width, height), pts)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{info.path}: cannot decode frame {count + 1} ({error_line(exc)}); "
                         f"the file is damaged or truncated") from None
    _check_complete(info, count, last_pts)


def _check_complete(info: VideoInfo, count: int, last_pts: int | None) -> None:
    """Error if fewer frames decoded than the header promised; warn if the video ends early."""
    if count == 0:
        raise VideoError(f"{info.path}: no video frames could be decoded")
    if info.frame_count and count < info.frame_count:
        raise VideoError(f"{info.path}: truncated or damaged (decoded {count} of {info.frame_count} frames)")
    if info.duration and last_pts is not None:
        end = float((last_pts * info.time_base) + 1 / info.rate)
        if end < 0.9 * info.duration - 2 / float(info.rate):
            warnings.warn(f"{info.path}: video ends at {end:.2f} s but the file says {info.duration:.2f} s "
                          f"(truncated, or the audio is longer)", stacklevel=2)
