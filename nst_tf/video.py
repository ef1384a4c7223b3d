"""Video in and out, optical flow and temporal consistency for frame-by-frame stylization.

- Reading: a video file (PyAV: FFmpeg bundled in the wheel) or a folder of frame images. Every frame keeps
  its presentation timestamp, so variable-frame-rate sources keep their timing.
- Writing: a video file (the source's timestamps and time base, the audio stream remuxed, not re-encoded)
  or a folder of PNG frames; always into a temporary name in the destination folder, renamed at the end,
  removed on failure, so a partial output never looks complete.
- Temporal consistency (Ruder et al. 2016's occlusion check, applied as a post-blend as in Chen et al.
  2017): dense optical flow between consecutive *input* frames (OpenCV DIS), the previous *output* frame
  warped into the current one, and blended where forward and backward flow agree.

This module needs no TensorFlow: the stylizer is passed in as a function of a batch of frames.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from nst_tf.images import ImageError, load_image, to_uint8

VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
                ".webm": "libvpx-vp9", ".avi": "mpeg4"}
CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}, "libx265": {"crf": "22", "preset": "medium"},
                 "libvpx-vp9": {"crf": "28", "b": "0", "row-mt": "1"}, "libvpx": {"crf": "10", "b": "2M"},
                 "mpeg4": {"qscale": "3"}}
FRAME_PATTERN = "frame_{:06d}.png"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # nst_tf.data's, without TF
MIN_SIDE = 16
VFR_TOLERANCE = 0.02  # frame intervals varying by more than 2 % (and one tick) mean a variable frame rate


class VideoError(ValueError):
    """A bad input or output video; its message is one line naming the file."""


def _reason(exc: BaseException) -> str:
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
        raise VideoError(f"{path}: cannot read video ({_reason(exc)})") from None


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


def output_size(width: int, height: int, size: int, even: bool) -> tuple[int, int]:
    """(width, height) with the long side `size` (0: unchanged), rounded to even numbers if `even`."""
    if size < 0:
        raise VideoError(f"size must be non-negative, got {size}")
    scale = 1.0 if size == 0 else size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        new_w, new_h = new_w - new_w % 2, new_h - new_h % 2
    if min(new_w, new_h) < MIN_SIDE:
        raise VideoError(f"frames of {width}x{height} px become {new_w}x{new_h} px; each side must be at least "
                         f"{MIN_SIDE} px (choose a larger --size)")
    return new_w, new_h


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
        raise VideoError(f"{info.path}: cannot decode frame {count + 1} ({_reason(exc)}); "
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


# -- writing -------------------------------------------------------------------------------------------------


def output_kind(path: str) -> str:
    """'video' for a known video extension, 'frames' for a folder (no extension, or an existing folder)."""
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if path.endswith(("/", os.sep)) or os.path.isdir(path) or not ext:
        return "frames"
    if ext in VIDEO_CODECS:
        return "video"
    raise VideoError(f"{path}: unsupported output format '{ext}' (use a folder for frames, or one of "
                     f"{', '.join(sorted(VIDEO_CODECS))})")


def check_output(path: str, codec: str = "auto", overwrite: bool = False) -> str:
    """Fail early, before any work, if `path` cannot be written; return the resolved codec ('' for frames)."""
    path = path.rstrip("/") or path
    kind = output_kind(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise VideoError(f"{path}: output directory {directory} does not exist")
    if os.path.exists(path):
        if not overwrite:
            raise VideoError(f"{path}: already exists (pass --overwrite to replace it)")
        if kind == "video" and os.path.isdir(path):
            raise VideoError(f"{path}: is a folder, not a video file")
        if kind == "frames" and not os.path.isdir(path):
            raise VideoError(f"{path}: is a file, not a frames folder")
    try:  # really create a file: os.access is not enough (root, read-only mounts)
        fd, probe_path = tempfile.mkstemp(prefix=".probe-", suffix=os.path.splitext(path)[1], dir=directory)
        os.close(fd)
    except OSError:
        raise VideoError(f"{path}: output directory {directory} is not writable") from None
    try:
        return "" if kind == "frames" else _check_codec(path, probe_path, codec)
    finally:
        os.unlink(probe_path)


def _check_codec(path: str, probe_path: str, codec: str) -> str:
    """The codec for `path` ('auto': by extension); VideoError if unknown or the container cannot hold it."""
    ext = os.path.splitext(path)[1].lower()
    codec = VIDEO_CODECS[ext] if codec == "auto" else codec
    try:
        kind = av.codec.Codec(codec, "w").type
    except (av.FFmpegError, ValueError):
        raise VideoError(f"{path}: unknown video encoder '{codec}'") from None
    if kind != "video":
        raise VideoError(f"{path}: '{codec}' is not a video encoder")
    container = av.open(probe_path, "w")
    try:
        supported = container.supported_codecs
        name = container.format.name
    finally:
        container.close()
    if codec not in supported:
        raise VideoError(f"{path}: the {name} container cannot hold {codec} video "
                         f"(for {ext} use {VIDEO_CODECS[ext]}, or choose another extension)")
    return codec


def _temporary(directory: str, prefix: str, suffix: str, folder: bool) -> str:
    """Create a new, uniquely named file or folder with the umask's permissions (mkstemp's are 0600)."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            if folder:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue
    raise VideoError(f"{directory}: cannot create a temporary output")


class _AudioRemuxer:
    """Copies the source's first audio stream packet by packet, interleaved with the video by time."""

    def __init__(self, source: str, container: av.container.OutputContainer):
        self.source = av.open(source)
        in_stream = self.source.streams.audio[0]
        if in_stream.codec_context.name not in container.supported_codecs:
            name = in_stream.codec_context.name
            self.source.close()
            raise VideoError(f"the {container.format.name} container cannot hold the source's {name} audio")
        self.stream = container.add_stream_from_template(in_stream)
        self.container = container
        self.packets = (p for p in self.source.demux(in_stream) if p.dts is not None)
        self.pending = None
        self.count = 0

    def mux_until(self, seconds: float | None) -> None:
        """Mux audio packets that start before `seconds` (None: all that are left)."""
        while True:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None:
                return
            if seconds is not None and packet.pts is not None and packet.pts * packet.time_base > seconds:
                self.pending = packet
                return
            packet.stream = self.stream
            self.container.mux(packet)
            self.count += 1

    def close(self) -> None:
        """Close the source."""
        self.source.close()


class VideoWriter:
    """Writes frames to a temporary file beside `path`; commit() renames it into place, abort() removes it."""

    def __init__(self, path: str, width: int, height: int, time_base: Fraction, rate: Fraction, codec: str,
                 audio_source: str | None = None, overwrite: bool = False):
        self.path, self.overwrite = path, overwrite
        directory = os.path.dirname(os.path.abspath(path))
        name, ext = os.path.splitext(os.path.basename(path))
        self.tmp = _temporary(directory, f".{name}.partial-", ext, folder=False)
        self.frames, self.audio, self.warning = 0, None, None
        try:
            self.container = av.open(self.tmp, "w")
            self.stream = self._add_video(codec, width, height, time_base, rate)
            if audio_source is not None:
                try:
                    self.audio = _AudioRemuxer(audio_source, self.container)
                except VideoError as exc:
                    self.warning = f"{exc}: audio dropped (use .mkv to keep it)"
        except BaseException:
            self._remove()
            raise

    def _add_video(self, codec: str, width: int, height: int, time_base: Fraction, rate: Fraction):
        """The video stream, timestamps in the source's time base (so variable rates are kept)."""
        stream = self.container.add_stream(codec, rate=rate, options=dict(CODEC_OPTIONS.get(codec, {})))
        stream.width, stream.height = width, height
        formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or ())]
        stream.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        self.time_base = time_base
        return stream

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one uint8 RGB frame with timestamp `pts` (in the time base given at construction)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        try:
            if self.audio is not None:
                self.audio.mux_until(float(pts * self.time_base) + 0.5)
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"{self.path}: cannot write frame {self.frames + 1} ({_reason(exc)})") from None
        self.frames += 1

    def commit(self) -> None:
        """Flush the encoder, copy the rest of the audio, close, and rename into place."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.mux_until(None)
                self.audio.close()
            self.container.close()
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"{self.path}: cannot finish the video ({_reason(exc)})") from None
        os.replace(self.tmp, self.path)

    def _remove(self) -> None:
        """Delete the temporary file."""
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def abort(self) -> None:
        """Close without finishing and delete the temporary file."""
        for closer in (getattr(self.audio, "close", None), getattr(getattr(self, "container", None), "close", None)):
            try:
                if closer is not None:
                    closer()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
        self._remove()


class FramesWriter:
    """Writes PNG frames into a temporary folder beside `path`; commit() renames it into place."""

    def __init__(self, path: str, overwrite: bool = False):
        self.path, self.overwrite = path.rstrip("/") or path, overwrite
        directory = os.path.dirname(os.path.abspath(self.path))
        self.tmp = _temporary(directory, f".{os.path.basename(self.path)}.partial-", "", folder=True)
        self.frames, self.warning, self.audio = 0, None, None

    def write(self, image: np.ndarray, pts: int) -> None:  # noqa: ARG002 - frames carry no timestamps
        """Write one uint8 RGB frame as the next PNG."""
        self.frames += 1
        ok = cv2.imwrite(os.path.join(self.tmp, FRAME_PATTERN.format(self.frames)), image[..., ::-1])
        if not ok:
            raise VideoError(f"{self.path}: cannot write frame {self.frames}")

    def commit(self) -> None:
        """Rename the folder into place (an existing one, with overwrite, is replaced)."""
        old = None
        if os.path.exists(self.path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.old-",
                                   dir=os.path.dirname(os.path.abspath(self.path)))
            os.replace(self.path, os.path.join(old, "frames"))
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Delete the temporary folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_writer(path: str, info: VideoInfo, width: int, height: int, codec: str,
                overwrite: bool = False) -> VideoWriter | FramesWriter:
    """A writer for a video file (codec given) or a frames folder (codec '')."""
    if not codec:
        return FramesWriter(path, overwrite)
    audio = info.path if info.has_audio and not info.is_folder else None
    try:
        return VideoWriter(path, width, height, info.time_base, info.rate, codec, audio, overwrite)
    except (av.FFmpegError, ValueError) as exc:
        raise VideoError(f"{path}: cannot open for writing ({_reason(exc)})") from None


# -- optical flow and temporal consistency ---------------------------------------------------------------------


def gray(image: np.ndarray) -> np.ndarray:
    """uint8 (or [0, 1] float) RGB -> uint8 luminance for flow estimation."""
    if image.dtype != np.uint8:
        image = to_uint8(image)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Dense optical flow (OpenCV DIS, or Farneback for an independent check): flow(a, b)[y, x] = (dx, dy)
    such that a(x, y) ~ b(x + dx, y + dy)."""

    def __init__(self, method: str = "dis"):
        if method not in ("dis", "farneback"):
            raise ValueError(f"unknown flow method '{method}' (use dis or farneback)")
        self.method = method
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from uint8 grayscale `a` to `b`: [H, W, 2] float32."""
        if self.dis is not None:
            return self.dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample `image` at (x, y) + flow (bilinear); also return where that point lies inside the image."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warped, inside


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s mask for the current frame: forward-backward consistent, not a motion boundary, inside.

    `backward` maps current -> previous pixels, `forward` previous -> current.
    """
    forward_at, inside = warp(forward, backward)
    round_trip = np.sum((backward + forward_at) ** 2, axis=-1)
    magnitude = np.sum(backward ** 2, axis=-1) + np.sum(forward_at ** 2, axis=-1)
    consistent = round_trip <= 0.01 * magnitude + 0.5
    du = np.gradient(backward[..., 0])
    dv = np.gradient(backward[..., 1])
    gradient = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    smooth = gradient <= 0.01 * np.sum(backward ** 2, axis=-1) + 0.002
    return consistent & smooth & inside


class FlowConsistency:
    """Blend the previous output, warped along the input frames' flow, into each new stylized frame.

    out_t = m * w * warp(out_{t-1}) + (1 - m * w) * stylized_t, with m the reliability mask (softened by a
    small blur) and w = `weight`. Occluded and newly visible pixels take the fresh stylization.
    """

    def __init__(self, weight: float = 0.8, method: str = "dis"):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"consistency weight must be in [0, 1], got {weight}")
        self.weight = weight
        self.flow = FlowEstimator(method)
        self.previous_gray: np.ndarray | None = None
        self.previous_output: np.ndarray | None = None
        self.reliable_fraction: list[float] = []

    def predict(self, frame: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The previous output warped into `frame` (uint8 RGB input) and the blend weights, or (None, None)."""
        current = gray(frame)
        previous, self.previous_gray = self.previous_gray, current
        if previous is None or self.previous_output is None:
            return None, None
        backward = self.flow(current, previous)
        forward = self.flow(previous, current)
        mask = reliable(backward, forward).astype(np.float32)
        self.reliable_fraction.append(float(mask.mean()))
        mask = cv2.blur(mask, (3, 3)) * self.weight
        warped, _ = warp(self.previous_output, backward)
        return warped, mask[..., None]

    def blend(self, stylized: np.ndarray, warped: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        """Mix and remember the result as the previous output."""
        out = stylized if warped is None else mask * warped + (1.0 - mask) * stylized
        self.previous_output = out.astype(np.float32)
        return self.previous_output

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """One step: input frame (uint8) and its stylization (float [0, 1]) -> the consistent output."""
        warped, mask = self.predict(frame)
        return self.blend(stylized, warped, mask)


def batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Group frames into lists of `size` (the last may be shorter)."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def stylize_frames(frames: Iterable[Frame], stylize_batch: Callable[[np.ndarray], np.ndarray],
                   consistency: FlowConsistency | None = None, batch_size: int = 4) -> Iterator[tuple[np.ndarray, int]]:
    """Stylize frames in batches ([B, H, W, 3] float in [0, 1] -> same), then make them temporally consistent.

    Yields (uint8 RGB output, pts) in order.
    """
    for batch in batched(frames, batch_size):
        inputs = np.stack([f.image for f in batch]).astype(np.float32) / 255.0
        outputs = stylize_batch(inputs)
        for frame, out in zip(batch, outputs):
            if consistency is not None:
                out = consistency(frame.image, out)
            yield to_uint8(out), frame.pts


def fast_stylizer(net, vector, strength: float, tile: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A batch function for stylize_frames() from the arbitrary-style network and a style vector (compiled).
    Frames larger than `tile` px (None: chosen from the free memory; 0: never) are stylized one at a time in
    tiles with each frame's whole statistics (nst_tf.tiling); out of memory: tiling.OutOfMemory, one line."""
    import tensorflow as tf

    from nst_tf import fast, tiling

    compiled = tf.function(lambda x: fast.stylize_padded(net, x, vector, strength), reduce_retracing=True)
    side = tiling.check_tile(tiling.choose_tile(net) if tile is None else tile)

    def run(batch: np.ndarray) -> np.ndarray:
        tiled = bool(side) and max(batch.shape[1:3]) + 2 * fast.MARGIN > side
        try:
            if tiled:
                return np.stack([tiling.stylize_tiled(net, frame, vector, strength, side) for frame in batch])
            return compiled(tf.constant(batch, tf.float32)).numpy()
        except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
            if isinstance(exc, tiling.OutOfMemory):
                raise
            message = tiling.out_of_memory_message(batch.shape[2], batch.shape[1], side if tiled else 0)
            raise tiling.OutOfMemory(message) from None

    return run


class GatysFrames:
    """Per-frame Gatys optimisation with one compiled Adam step reused for every frame (traced once).

    Each frame points the objective at its content (Objective.set_content), resets Adam, and starts from
    `init` (the warped previous result where the flow is reliable, the frame elsewhere).
    """

    def __init__(self, extractor, styles: list[np.ndarray], first_frame: np.ndarray, steps: int,
                 first_steps: int, learning_rate: float = 0.02, weights=None, blend: list[float] | None = None):
        import tensorflow as tf

        from nst_tf import optimize

        self.steps, self.first_steps, self.calls = steps, first_steps, 0
        targets = optimize.style_targets(extractor, styles, blend)
        self.objective = optimize.Objective(extractor, first_frame, targets, weights or optimize.LossWeights())
        self.image = tf.Variable(first_frame[None].astype(np.float32))
        self.adam = optimize.Adam(self.objective, self.image, learning_rate)

    def __call__(self, frame: np.ndarray, init: np.ndarray) -> np.ndarray:
        """Optimise one [H, W, 3] frame in [0, 1] from `init`; return the result."""
        self.objective.set_content(frame)
        self.adam.reset(np.clip(init, 0.0, 1.0)[None].astype(np.float32))
        for _ in range(self.first_steps if self.calls == 0 else self.steps):
            self.adam.step()
        self.calls += 1
        return self.adam.result().numpy()[0]


def optimize_frames(frames: Iterable[Frame], gatys: GatysFrames,
                    consistency: FlowConsistency | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Gatys per frame, initialised from the warped previous output (with consistency) or the frame."""
    for frame in frames:
        image = frame.image.astype(np.float32) / 255.0
        if consistency is None:
            yield to_uint8(gatys(image, image)), frame.pts
            continue
        warped, mask = consistency.predict(frame.image)
        init = image if warped is None else (mask > 0) * warped + (mask <= 0) * image
        yield to_uint8(consistency.blend(gatys(image, init), warped, mask)), frame.pts


def warping_error(outputs: list[np.ndarray], inputs: list[np.ndarray], method: str = "farneback") -> float:
    """Temporal instability: mean |out_t - warp(out_{t-1})| over reliably matched pixels, flow from the inputs.

    The usual 'warping error' of video-consistency papers; outputs in [0, 1] (or uint8), inputs uint8 RGB.
    """
    flow = FlowEstimator(method)
    errors = []
    for t in range(1, len(outputs)):
        a, b = gray(inputs[t]), gray(inputs[t - 1])
        backward, forward = flow(a, b), flow(b, a)
        mask = reliable(backward, forward)
        if not mask.any():
            continue
        current = np.asarray(outputs[t], np.float32) / (255.0 if outputs[t].dtype == np.uint8 else 1.0)
        previous = np.asarray(outputs[t - 1], np.float32) / (255.0 if outputs[t - 1].dtype == np.uint8 else 1.0)
        warped, _ = warp(previous, backward)
        errors.append(float(np.abs(current - warped)[mask].mean()))
    if not errors:
        raise ValueError("no reliably matched pixels between consecutive frames")
    return float(np.mean(errors))
