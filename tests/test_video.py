"""nst-video and nst_tf.video: timing kept, audio remuxed, temporal consistency measured, bad input refused."""

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import last_line, run_cli
from PIL import Image

from nst_tf import video, video_read, video_write

DX, DY = 3, 2  # true motion of the synthetic video, pixels per frame (not a multiple of the network's stride)
BORDER = 8


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture in [0, 1] (cells of about 8 px), so optical flow is well defined."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def moving_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """uint8 frames of a texture translated by (DX, DY) px per frame: frame_t(y, x) = frame_{t-1}(y + DY, x + DX)."""
    tex = texture(height + count * DY + 4, width + count * DX + 4)
    return [(tex[t * DY:t * DY + height, t * DX:t * DX + width] * 255 + 0.5).astype(np.uint8) for t in range(count)]


def write_video(path: str, frames: list[np.ndarray], rate=Fraction(24), pts=None, audio: bool = False,
                options: dict | None = None) -> None:
    """Encode frames with libx264 (4:4:4, so odd sizes and odd shifts survive), optional AAC sine audio."""
    height, width = frames[0].shape[:2]
    with av.open(path, "w", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        if pts is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        if sound is not None:
            for k in range(int(len(frames) / rate * 44100 / 1024) + 1):
                t = (np.arange(1024) + k * 1024) / 44100
                chunk = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 44100, k * 1024, Fraction(1, 44100)
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            if pts is not None:
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def read_video(path: str) -> dict:
    """Frames (float [0, 1]), timestamps in seconds, rate and audio packet count of a video file."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)
            times.append(float(frame.pts * stream.time_base))
        rate = stream.average_rate
    with av.open(path) as container:
        audio = [(s.codec_context.name, sum(1 for p in container.demux(s) if p.size)) for s in container.streams.audio]
    return {"frames": frames, "times": times, "rate": rate, "audio": audio}


def read_folder(path: str) -> list[np.ndarray]:
    """The PNG frames of an output folder, in order, float [0, 1]."""
    return [np.asarray(Image.open(p), np.float32) / 255.0 for p in video_read.frame_files(path)]


def true_motion_instability(frames: list[np.ndarray], dx: int = DX, dy: int = DY) -> float:
    """Mean |out_t - out_{t-1} moved by the true motion| inside a border (the pixels both frames see)."""
    errors = []
    for t in range(1, len(frames)):
        h, w = frames[t].shape[:2]
        current = frames[t][BORDER:h - BORDER - dy, BORDER:w - BORDER - dx]
        previous = frames[t - 1][BORDER + dy:h - BORDER, BORDER + dx:w - BORDER]
        errors.append(float(np.abs(current - previous).mean()))
    return float(np.mean(errors))


def stylize_cli(inp: str, out: str, *extra: str, style: str) -> object:
    """Run nst-video at a small size."""
    return run_cli("nst_tf.cli.video", f"--input={inp}", f"--style={style}", f"--output={out}", *extra)


@pytest.fixture(scope="module")
def style(data_dir) -> str:
    return f"{data_dir}/styles/starry_night.jpg"


@pytest.fixture(scope="module")
def moving(tmp_path_factory) -> tuple[str, list[np.ndarray]]:
    """A 12-frame, 128x96 video of a texture moving by (DX, DY) px per frame, at 24 fps."""
    frames = moving_frames(12, 128, 96)
    path = str(tmp_path_factory.mktemp("moving") / "moving.mp4")
    write_video(path, frames)
    return path, frames


# -- library --------------------------------------------------------------------------------------------------


def test_flow_warp_and_occlusion_mask_on_known_motion(moving):
    _, frames = moving
    flow = video.FlowEstimator("dis")
    current, previous = video.gray(frames[5]), video.gray(frames[4])
    backward, forward = flow(current, previous), flow(previous, current)
    inner = backward[BORDER:-BORDER, BORDER:-BORDER]
    assert np.abs(np.median(inner[..., 0]) - DX) < 0.25 and np.abs(np.median(inner[..., 1]) - DY) < 0.25
    mask = video.reliable(backward, forward)
    assert mask[BORDER:-BORDER - DY, BORDER:-BORDER - DX].mean() > 0.9  # seen in both frames
    assert mask[-1:, :].mean() < 0.5 and mask[:, -1:].mean() < 0.5  # newly visible at the far edges
    warped, inside = video.warp(frames[4].astype(np.float32), backward)
    error = np.abs(warped - frames[5])[inside][..., None].mean() / 255.0
    assert error < 0.02, error


def test_output_size_rounds_video_sides_to_even():
    assert video_write.output_size(321, 241, 0, even=True) == (320, 240)
    assert video_write.output_size(321, 241, 0, even=False) == (321, 241)
    assert video_write.output_size(640, 360, 256, even=True) == (256, 144)
    with pytest.raises(video_read.VideoError, match="at least"):
        video_write.output_size(640, 20, 256, even=True)


def test_probe_reports_variable_frame_rate(tmp_path):
    path = str(tmp_path / "vfr.mp4")
    write_video(path, moving_frames(6, 64, 48), pts=[0, 40, 80, 200, 240, 400])
    info = video_read.probe(path)
    assert info.frame_count == 6 and info.variable_rate is not None
    assert info.variable_rate[0] == pytest.approx(1 / 0.16, rel=0.01) and info.variable_rate[1] == pytest.approx(25)


def test_real_clip_flow_consistency_lowers_warping_error(data_dir):
    """One short real check: 10 frames of fox.mp4 at 96 px, stylized once, with and without the flow blend."""
    from nst_tf import fast
    from nst_tf.images import load_image, resize_long_side
    from nst_tf.network import ArbitraryStyleNetwork

    info = video_read.probe(f"{data_dir}/video/fox.mp4")
    frames = [f.image for _, f in zip(range(10), video_read.read_frames(info, 96, 96))]
    net = ArbitraryStyleNetwork.load()
    vector = fast.style_vector(net, [resize_long_side(load_image(f"{data_dir}/styles/starry_night.jpg"), 128)])
    stylized = video.fast_stylizer(net, vector, 1.0)(np.stack(frames).astype(np.float32) / 255.0)
    blend = video.FlowConsistency(0.8)
    consistent = [blend(f, s) for f, s in zip(frames, stylized)]
    plain, smooth = video.warping_error(list(stylized), frames), video.warping_error(consistent, frames)
    print(f"fox.mp4, 10 frames at 96 px: warping error (Farneback flow) none {plain:.4f}, flow {smooth:.4f}")
    assert smooth < 0.8 * plain


# -- the command line ------------------------------------------------------------------------------------------


@pytest.mark.slow  # the real clip's flow check (test_real_clip_flow_consistency_lowers_warping_error) stays in CI
def test_flow_consistency_lowers_true_motion_instability(moving, tmp_path, style):
    path, frames = moving
    outputs = {}
    for mode in ("none", "flow"):
        out = str(tmp_path / mode)
        proc = stylize_cli(path, out, f"--consistency={mode}", "--size=0", style=style)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[mode] = read_folder(out)
        assert len(outputs[mode]) == 12 and outputs[mode][0].shape == (96, 128, 3)
    source = true_motion_instability([f / 255.0 for f in frames])
    none, flow = true_motion_instability(outputs["none"]), true_motion_instability(outputs["flow"])
    frozen = true_motion_instability(outputs["flow"], 0, 0)  # a frozen output would score 0 on the true motion
    print(f"true-motion instability: input {source:.4f}, none {none:.4f}, flow {flow:.4f} "
          f"({1 - flow / none:.0%} lower); flow output against zero motion {frozen:.4f}")
    assert flow <= 0.7 * none
    assert frozen > 2 * flow  # the output moves with the content, it is not frozen


def test_video_keeps_frame_count_rate_timestamps_and_audio(tmp_path, style):
    frames = moving_frames(12, 96, 64)
    source = str(tmp_path / "ntsc.mp4")
    write_video(source, frames, rate=Fraction(30000, 1001), audio=True)
    out = str(tmp_path / "styled.mp4")
    proc = stylize_cli(source, out, "--size=64", style=style)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames/s" in proc.stdout and "audio packets copied" in proc.stdout
    src, res = read_video(source), read_video(out)
    assert len(res["frames"]) == 12 and res["frames"][0].shape == (42, 64, 3)
    assert res["rate"] == src["rate"] == Fraction(30000, 1001)
    np.testing.assert_allclose(res["times"], src["times"], atol=1e-3)
    assert res["audio"] == src["audio"] and src["audio"][0][1] > 0
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary file left


def test_variable_frame_rate_keeps_timestamps(tmp_path, style):
    stamps = [0, 40, 80, 200, 240, 400, 440]
    source = str(tmp_path / "vfr.mp4")
    write_video(source, moving_frames(7, 64, 48), pts=stamps)
    out = str(tmp_path / "styled.mkv")
    proc = stylize_cli(source, out, "--size=64", "--consistency=none", style=style)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "variable frame rate" in proc.stdout
    np.testing.assert_allclose(read_video(out)["times"], np.array(stamps) / 1000.0, atol=2e-3)


def test_odd_size_video_and_frames_folder_input(tmp_path, style):
    odd = moving_frames(5, 321, 241)
    source = str(tmp_path / "odd.mp4")
    write_video(source, odd)
    proc = stylize_cli(source, str(tmp_path / "odd_frames"), "--size=0", style=style)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = read_folder(str(tmp_path / "odd_frames"))
    assert len(frames) == 5 and frames[0].shape == (241, 321, 3)

    folder = tmp_path / "odd_frames"  # now the input: a folder of 321x241 PNG frames
    out = str(tmp_path / "from_frames.mp4")
    proc = stylize_cli(str(folder), out, "--size=0", "--fps=12", style=style)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_video(out)
    assert len(result["frames"]) == 5 and result["frames"][0].shape == (240, 320, 3)  # even sides for yuv420p
    assert result["rate"] == 12 and result["audio"] == []


def test_failure_midway_leaves_no_output(tmp_path, style):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(moving_frames(6, 64, 48)):
        Image.fromarray(image).save(folder / f"f{i:02d}.png")
    (folder / "f04.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for out in (str(tmp_path / "out.mp4"), str(tmp_path / "out_frames")):
        proc = stylize_cli(str(folder), out, "--size=0", "--batch_size=1", style=style)
        line = last_line(proc.stderr)
        assert proc.returncode != 0 and line.startswith("error: ") and "f04.png" in line, line
        assert sorted(os.listdir(tmp_path)) == ["frames"], os.listdir(tmp_path)


def bad_inputs(folder) -> dict[str, str]:
    """Broken videos: {case: path}."""
    good = moving_frames(12, 64, 48)
    cases = {}
    for name, options in (("truncated", None), ("truncated_faststart", {"movflags": "faststart"})):
        path = str(folder / f"{name}.mp4")
        write_video(path, good, options=options)
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
        cases[name] = path
    for ext in ("mp4", "mkv"):  # a video stream and no frames
        path = str(folder / f"zero_frames.{ext}")
        with av.open(path, "w") as out:
            stream = out.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            out.start_encoding()
        cases[f"zero_frames_{ext}"] = path
    cases["text"] = str(folder / "notes.mp4")
    open(cases["text"], "w").write("this is not a video\n")
    cases["empty"] = str(folder / "empty.mp4")
    open(cases["empty"], "wb").close()
    cases["missing"] = str(folder / "missing.mp4")
    cases["empty_folder"] = str(folder / "no_frames")
    os.mkdir(cases["empty_folder"])
    return cases


def test_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path, style):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for name, path in bad_inputs(inputs).items():
        proc = stylize_cli(path, str(outputs / "out.mp4"), "--size=64", style=style)
        line = last_line(proc.stderr)
        print(f"{name}: {line}")
        assert proc.returncode != 0, name
        assert line.startswith("error: ") and path in line, (name, line)
        assert os.listdir(outputs) == [], (name, os.listdir(outputs))


@pytest.mark.parametrize("output,extra,expected", [
    ("x.webm", ["--codec=libx264"], "webm container cannot hold libx264"),
    ("x.gif", [], "unsupported output format '.gif'"),
    ("x.mp4", ["--codec=nosuchcodec"], "unknown video encoder 'nosuchcodec'"),
    ("/proc/x.mp4", [], "not writable"),
    ("existing.mp4", [], "already exists (pass --overwrite"),
    ("x.mp4", ["--method=optimize"], "--method=optimize needs --weights"),
    ("x.mp4", ["--alpha=2"], "--alpha must be in [0, 1]"),
    ("x.mp4", ["--strength=2.5"], "--strength must be in [0, 2]"),
])
def test_bad_outputs_and_flags_fail_before_any_work(moving, tmp_path, style, output, extra, expected):
    (tmp_path / "existing.mp4").write_bytes(b"keep me")
    proc = stylize_cli(moving[0], os.path.join(tmp_path, output), *extra, style=style)
    line = last_line(proc.stderr)
    assert proc.returncode != 0 and line.startswith("error: ") and expected in line, line
    assert os.listdir(tmp_path) == ["existing.mp4"] and (tmp_path / "existing.mp4").read_bytes() == b"keep me"


def test_optimize_method_from_warped_previous(moving, tmp_path, style, random_vgg16_weights):
    frames = moving_frames(4, 48, 32)
    source = str(tmp_path / "short.mp4")
    write_video(source, frames)
    out = str(tmp_path / "gatys")
    proc = stylize_cli(source, out, "--method=optimize", f"--weights={random_vgg16_weights}", "--backbone=vgg16",
                       "--preprocessing=caffe", "--size=0",
                       "--steps=2", "--first_frame_steps=3", style=style)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_folder(out)
    assert len(result) == 4 and result[0].shape == (32, 48, 3)
    assert "optimize, consistency flow" in proc.stdout


def test_fast_flags_consistency_weight_style_blend_and_mobile_model(moving, tmp_path, data_dir):
    """--consistency_weight, --style_blend and --model=mobile reach the run: the frames written are the library's
    for those settings (nst_tf.video by hand), and without any one of them the frames are others."""
    from nst_tf import fast
    from nst_tf.images import load_image, resize_long_side

    source = str(tmp_path / "short.mp4")
    write_video(source, moving_frames(6, 64, 48))
    styles = [f"{data_dir}/styles/starry_night.jpg", f"{data_dir}/styles/the_scream.jpg"]
    out = str(tmp_path / "frames")
    proc = run_cli("nst_tf.cli.video", f"--input={source}", f"--style={','.join(styles)}", f"--output={out}",
                   "--size=0", "--style_size=64", "--consistency_weight=0.3", "--style_blend=0.8,0.2",
                   "--model=mobile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = np.stack(read_folder(out))
    assert written.shape == (6, 48, 64, 3)

    info = video_read.probe(source)
    pictures = [resize_long_side(load_image(p), 64) for p in styles]

    def library(model="mobile", blend=(0.8, 0.2), weight=0.3) -> np.ndarray:
        net = fast.load_network(model)
        stylize = video.fast_stylizer(net, fast.style_vector(net, pictures, blend), 1.0)
        frames = video_read.read_frames(info, 64, 48)
        outputs = video.stylize_frames(frames, stylize, video.FlowConsistency(weight), batch_size=4)
        return np.stack([o for o, _ in outputs]).astype(np.float32) / 255.0

    gap = np.abs(written - library())
    print(f"command line vs library: mean {gap.mean():.5f}, max {gap.max():.4f}")
    assert gap.max() <= 2 / 255 + 1e-6
    for flag, other in {"--model": library(model=None), "--style_blend": library(blend=None),
                        "--consistency_weight": library(weight=0.8)}.items():
        change = np.abs(written - other)
        print(f"without {flag}: mean change {change.mean():.4f}, max {change.max():.3f}")
        assert change.max() > 5 / 255 and change.mean() > 10 * gap.mean() + 1e-4, flag


def test_optimize_method_starts_each_frame_from_the_warped_previous_output(moving, random_vgg16_weights, style):
    """optimize_frames: from the second frame on, Gatys starts from the previous output warped along the flow where
    the flow is reliable (the frame itself elsewhere), and the result is blended with that warped output."""
    from nst_tf import features
    from nst_tf.images import load_image, resize_long_side

    frames = moving_frames(3, 64, 48)
    extractor = features.build_extractor(random_vgg16_weights, "vgg16", ["block2_conv1"], ["block1_conv1"],
                                         preprocessing="caffe")
    gatys = video.GatysFrames(extractor, [resize_long_side(load_image(style), 64)], frames[0] / 255.0, 2, 3)
    starts = []

    def recording(frame, init):
        starts.append(init.copy())
        return gatys(frame, init)

    outputs = [o for o, _ in video.optimize_frames([video_read.Frame(f, i) for i, f in enumerate(frames)], recording,
                                                   video.FlowConsistency(0.8))]
    np.testing.assert_allclose(starts[0], frames[0] / 255.0, atol=1e-6)  # the first frame: from itself
    flow = video.FlowEstimator("dis")
    for t in (1, 2):
        current, previous = video.gray(frames[t]), video.gray(frames[t - 1])
        backward = flow(current, previous)
        mask = video.reliable(backward, flow(previous, current))
        warped, _ = video.warp(outputs[t - 1].astype(np.float32) / 255.0, backward)
        inner = mask.copy()
        inner[:BORDER], inner[-BORDER:], inner[:, :BORDER], inner[:, -BORDER:] = False, False, False, False
        assert inner[BORDER:-BORDER, BORDER:-BORDER].mean() > 0.8  # the flow is reliable on most of the picture
        start_error = np.abs(starts[t] - warped)[inner].mean()
        frame_error = np.abs(starts[t] - frames[t] / 255.0)[inner].mean()
        print(f"frame {t}: start vs warped previous output {start_error:.4f}, vs the frame {frame_error:.4f}")
        assert start_error < 0.02 and frame_error > 5 * start_error
