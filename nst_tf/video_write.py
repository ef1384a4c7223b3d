"""Video out: check an output before any work, and write frames to a video file or a folder of PNG frames.

A video file keeps the source's timestamps and time base, and its audio stream is remuxed (not re-encoded). Every
output is written under a temporary name in the destination folder and renamed at the end (removed on failure), so
a partial output never looks complete.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from fractions import Fraction

import av
import cv2
import numpy as np

from nst_tf.video_read import VideoError, VideoInfo, error_line

VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
                ".webm": "libvpx-vp9", ".avi": "mpeg4"}
CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}, "libx265": {"crf": "22", "preset": "medium"},
                 "libvpx-vp9": {"crf": "28", "b": "0", "row-mt": "1"}, "libvpx": {"crf": "10", "b": "2M"},
                 "mpeg4": {"qscale": "3"}}
FRAME_PATTERN = "frame_{:06d}.png"
MIN_SIDE = 16


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
            raise VideoError(f"{self.path}: cannot write frame {self.frames + 1} ({error_line(exc)})") from None
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
            raise VideoError(f"{self.path}: cannot finish the video ({error_line(exc)})") from None
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
        raise VideoError(f"{path}: cannot open for writing ({error_line(exc)})") from None
