"""Temporal consistency for frame-by-frame stylization: optical flow, the flow-warped blend, and the stylizers.

Ruder et al. 2016's occlusion check, applied as a post-blend as in Chen et al. 2017: dense optical flow between
consecutive *input* frames (OpenCV DIS), the previous *output* frame warped into the current one, and blended where
forward and backward flow agree. The stylizer is passed in as a function of a batch of frames (the fast network's
`fast_stylizer`, or Gatys per frame with `GatysFrames`); only those two import TensorFlow. Frames come from
nst_tf.video_read and go to nst_tf.video_write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from nst_tf.images import to_uint8
from nst_tf.video_read import Frame


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
        tiled = bool(side) and max(batch.shape[1:3]) + 2 * tiling.margin_of(net) > side
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

        from nst_tf.objective import LossWeights, Objective, style_targets
        from nst_tf.optimizers import Adam

        self.steps, self.first_steps, self.calls = steps, first_steps, 0
        targets = style_targets(extractor, styles, blend)
        self.objective = Objective(extractor, first_frame, targets, weights or LossWeights())
        self.image = tf.Variable(first_frame[None].astype(np.float32))
        self.adam = Adam(self.objective, self.image, learning_rate)

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
