"""Training the arbitrary-style decoder: Gatys losses on the frozen VGG encoder, tf.distribute, resumable.

One training step: encode content and style, AdaIN (every level the network uses), decode, and
measure the output with the frozen VGG loss network: content loss either at relu4_1 against the AdaIN
target (`content_target="adain"`, Huang & Belongie) or at block4_conv2 against the content photo itself
(`"photo"`, the Gatys content loss the optimiser minimises), Gram style loss at `style_layers` against
the style image, and total variation. The loss network has the encoder's weights, so one pass per
image gives both the levels to AdaIN and the loss features. An identity term (the decoded content
features must give back the content photo, pixel MSE; Li et al. 2017's reconstruction decoders, Park &
Lee 2019's identity loss) teaches the decoder to invert the encoder; with every other weight at 0 the
step is reconstruction only and skips the style and output passes (a cheap warm-up). With `style_relative`
the style term is the output's style loss as a fraction of the content crop's own against the same style (what
the held-out check measures), so pairs far apart in Gram space no longer dominate the batch; `style_target`
stops pushing a pair once it is below that fraction, leaving the rest to the content term. With a photo content
target, `inversion_weight` adds the Huang & Belongie term as well: the output's relu4_1 against the decoder's relu4_1
input, asking the decoder to paint the deep statistics it is given. Gradients are
computed per replica and applied only when every loss is finite.

With a nst_tf.mobile MobileConfig the trainer trains the phone-sized network's transformer instead (a student):
the style vector is the style crop's moments from the same loss-network pass, the output is measured by the same
photo content, style and TV terms, identity asks the content's own vector to give the photo back, and
`distill_weight` adds the squared pixel error to a frozen arbitrary-style network's output (`teacher`, a network
folder; the bundled one by default). tools/jax_train.py --student is the same step in JAX.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from nst_tf import data as data_lib
from nst_tf import features as features_lib
from nst_tf import losses, warm_start
from nst_tf import palette as palette_lib
from nst_tf import strength as strength_lib
from nst_tf import weights as weights_lib
from nst_tf.adain import levels_vector
from nst_tf.mobile import MobileConfig, MobileStyleNetwork, config_from_json
from nst_tf.network import BOTTLENECK, ENCODER_LAYERS, ArbitraryStyleNetwork, NetworkConfig

CONTENT_TARGETS = ("adain", "photo")
PHOTO_CONTENT_LAYER = "block4_conv2"  # the product's default content layer (features.DEFAULT_CONTENT_LAYERS)


class TrainingError(RuntimeError):
    """Training cannot go on (incompatible checkpoint, persistent non-finite losses...)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored beside its checkpoints)."""

    content_dir: str
    style_dir: str
    model_dir: str
    weights: str = "imagenet"
    steps: int = 20000
    batch_size: int = 8
    crop: int = 256
    style_crop: int = 0  # 0: the same as crop
    learning_rate: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    style_relative: bool = False  # style term = the output's style loss / the content crop's own (per example)
    style_target: float = 0.0  # with style_relative: only the part of that fraction above this is penalised
    identity_weight: float = 0.0
    inversion_weight: float = 0.0  # relu4_1 of the output vs the decoder's relu4_1 input (with a photo target)
    photo_weight: float = 0.0  # with the AdaIN target: block4_conv2 of the output vs the photo's as well
    layout_weight: float = 0.0  # the output's light-and-dark layout (pooled, standardised luminance) vs the photo's
    distill_weight: float = 0.0  # phone-sized network only: squared pixel error to the teacher's output
    palette_weight: float = 0.0  # sliced Wasserstein distance of the output's pixel colours to the style crop's
    viewing_weight: float = 0.0  # a second Gram style term, output and style crop both resized by viewing_scale,
    viewing_scale: float = 0.5  # relative to the style term: strokes the size a viewer sees at a reduced size
    viewing_target: str = "shrunk"  # the style crop in that term: shrunk too, or "whole" (the painting as the viewer
    # sees it beside the reduced output: strokes 1 / viewing_scale times as big in the output as in the crop)
    strength_max: float = 0.0  # > 0: a strength per example, uniform in [0, this], fed to the network and weighing
    # the style and palette terms by strength squared (Babaeizadeh & Ghiasi 2020); 0: strength 1 throughout
    strength_zero: float = 0.0  # with strength_max: this fraction of the examples at strength 0 exactly (the photo)
    teacher: str = ""  # phone-sized network only: the teacher network folder ("": the bundled one)
    content_target: str = "adain"
    style_layers: str = ",".join(ENCODER_LAYERS)
    log_every: int = 10
    image_every: int = 200
    checkpoint_every: int = 100
    snapshot_every: int = 0  # also keep the inference weights every N steps in model_dir/snapshots/step-N
    keep_checkpoints: int = 3
    max_bad_steps: int = 20
    seed: int = 0


def image_grid(content: tf.Tensor, style: tf.Tensor, output: tf.Tensor, rows: int = 4) -> tf.Tensor:
    """Rows of content | style | output, as one [1, H, W, 3] image for TensorBoard."""
    rows = min(rows, int(content.shape[0]))
    row_images = [tf.concat([content[i], style[i], tf.clip_by_value(output[i], 0, 1)], axis=1) for i in range(rows)]
    return tf.concat(row_images, axis=0)[None]


class Trainer:
    """Builds the network under a strategy, restores the latest checkpoint, and trains."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None,
                 network_config: NetworkConfig | MobileConfig | None = None):
        if config.content_target not in CONTENT_TARGETS:
            raise ValueError(f"content_target must be one of {', '.join(CONTENT_TARGETS)}, "
                             f"got '{config.content_target}'")
        self.student = isinstance(network_config, MobileConfig)
        if self.student and config.content_target != "photo":
            raise ValueError("the phone-sized network has no AdaIN target: use content_target='photo'")
        if not 0.0 <= config.strength_zero < 1.0:
            raise ValueError(f"strength_zero must be in [0, 1), got {config.strength_zero}")
        if not 0.0 <= config.strength_max <= strength_lib.STRENGTH_MAX:
            raise ValueError(f"strength_max must be in [0, {strength_lib.STRENGTH_MAX:g}], got {config.strength_max}")
        if not 0.0 < config.viewing_scale < 1.0:
            raise ValueError(f"viewing_scale must be in (0, 1), got {config.viewing_scale}")
        if config.viewing_target not in ("shrunk", "whole"):
            raise ValueError(f"viewing_target must be 'shrunk' or 'whole', got {config.viewing_target!r}")
        if config.photo_weight and (self.student or config.content_target != "adain"):
            raise ValueError("photo_weight is for the arbitrary-style network with content_target='adain' (with "
                             "'photo' the content term is already the photo term)")
        if config.inversion_weight and (self.student or config.content_target != "photo"):
            raise ValueError("inversion_weight is for the arbitrary-style network with content_target='photo' (with "
                             "'adain' the content term is already the inversion term)")
        self.config = config
        self.style_layers = tuple(n.strip() for n in config.style_layers.split(",") if n.strip())
        if not self.style_layers:
            raise ValueError("style_layers: at least one layer is needed")
        self.strategy = strategy or tf.distribute.get_strategy()
        spec = weights_lib.resolve(config.weights, "vgg16")
        self.network_config = network_config or NetworkConfig(preprocessing=spec.preprocessing)
        self._check_run_dir()
        content_layers = (PHOTO_CONTENT_LAYER,) if config.content_target == "photo" else (BOTTLENECK,)
        if config.photo_weight:
            content_layers += (PHOTO_CONTENT_LAYER,)
        self.loss_layers = tuple(dict.fromkeys((*ENCODER_LAYERS, *content_layers, *self.style_layers)))
        with self.strategy.scope():
            if self.student:
                self.net = MobileStyleNetwork(self.network_config)
                self.teacher = self._load_teacher(config.teacher, spec.preprocessing) if config.distill_weight else None
                self.trained = (self.net.transformer,)
            else:
                self.net = ArbitraryStyleNetwork(self.network_config)
                self.trained = self.net.trained_models
            self.net.load_encoder_weights(spec)
            self.loss_net = features_lib.FeatureExtractor(spec, content_layers=(), style_layers=self.loss_layers)
            schedule = keras.optimizers.schedules.InverseTimeDecay(config.learning_rate, 1, config.lr_decay)
            self.optimizer = keras.optimizers.Adam(schedule)
            self.optimizer.build(self.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(step=self.step, optimizer=self.optimizer,
                                              **{model.name: model for model in self.trained})
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(config.model_dir, "checkpoints"), max_to_keep=config.keep_checkpoints)
        self.resumed_from = self._restore()
        self.skipped_steps = 0

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """What the optimiser updates: the decoder's (and the linear transform's) or the transformer's weights."""
        return [v for model in self.trained for v in model.trainable_variables]

    @property
    def current_step(self) -> int:
        """The number of applied updates so far."""
        return int(self.step.numpy())

    @staticmethod
    def _load_teacher(directory: str, preprocessing: str) -> ArbitraryStyleNetwork:
        """The frozen arbitrary-style network a student learns from; TrainingError when its VGG does not fit."""
        teacher = ArbitraryStyleNetwork.load(directory or None)
        if teacher.config.preprocessing != preprocessing:
            raise TrainingError(f"{directory or 'the bundled network'}: the teacher's VGG16 uses "
                                f"{teacher.config.preprocessing} preprocessing, the loss network {preprocessing}")
        return teacher

    # -- run folder and checkpoints ------------------------------------------------
    def _check_run_dir(self) -> None:
        os.makedirs(self.config.model_dir, exist_ok=True)
        path = os.path.join(self.config.model_dir, "network_config.json")
        if os.path.exists(path):
            with open(path) as f:
                stored = config_from_json(f.read())
            if stored != self.network_config:
                raise TrainingError(
                    f"{path}: the checkpoints here are for {stored}, not {self.network_config}; "
                    "use another --model_dir")
        else:
            with open(path, "w") as f:
                f.write(self.network_config.to_json())
        with open(os.path.join(self.config.model_dir, "train_config.json"), "w") as f:
            json.dump(asdict(self.config), f, indent=2, sort_keys=True)

    def _restore(self) -> str | None:
        latest = self.manager.latest_checkpoint
        if latest is None:
            return None
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            reason = str(exc).splitlines()[0][:200]
            raise TrainingError(f"{latest}: checkpoint does not fit this model ({reason})") from None
        return latest

    def init_decoder_from(self, directory: str) -> list[str]:
        """A warm start from a saved network folder (nst_tf.warm_start); returns the layers not in the source."""
        init = warm_start.init_mobile if self.student else warm_start.init_arbitrary
        try:
            return init(self.net, self.network_config, directory)
        except warm_start.WarmStartError as exc:
            raise TrainingError(str(exc)) from None

    # -- one step --------------------------------------------------------------------
    def compute_losses(self, content: tf.Tensor, style: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Per-example loss terms ([B] each) and the decoded output for one batch."""
        if self.student:
            return self._student_losses(content, style)
        cfg = self.config
        net = self.net
        levels = self.network_config.levels
        content_feats = self._loss_features(content)
        content_levels = [content_feats[n] for n in levels]
        own_vector = net.vector_of(content_levels, content, training=True)
        terms = {}
        if cfg.identity_weight:
            decoded = net.decode(net.own_levels(content_levels, training=True), 0.0, training=True)
            reconstruction = net.finish(decoded, own_vector)
            terms["identity"] = cfg.identity_weight * losses.reconstruction_loss(reconstruction, content)
            if not (cfg.content_weight or cfg.style_weight or cfg.tv_weight):
                terms["total"] = terms["identity"]
                return terms, reconstruction
        style_feats = self._loss_features(style)
        strength = self.sample_strength(tf.shape(content)[0])
        amount = strength_lib.blend_amount(strength)
        style_vector = net.vector_of([style_feats[n] for n in levels], style, training=True)
        vector = style_vector if cfg.strength_max == 0 else amount * style_vector + (1.0 - amount) * own_vector
        targets = net.styled_levels(content_levels, vector, training=True, alpha=amount)
        output = net.finish(net.decode(targets, strength, training=True), vector)
        return self._output_terms(terms, output, content_feats, style_feats, targets[-1], strength, style,
                                  content), output

    def sample_strength(self, batch: tf.Tensor) -> tf.Tensor:
        """[batch, 1] strengths: uniform in [0, strength_max], or 1 when the run has no strength control."""
        if self.config.strength_max == 0:
            return tf.ones([batch, 1])
        drawn = tf.random.uniform([batch, 1], 0.0, self.config.strength_max)
        return tf.where(tf.random.uniform([batch, 1]) < self.config.strength_zero, 0.0, drawn)

    def _output_terms(self, terms: dict, output: tf.Tensor, content_feats: dict, style_feats: dict,
                      adain_target: tf.Tensor | None = None, strength: tf.Tensor | None = None,
                      style: tf.Tensor | None = None, content: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """`terms` plus the output's weighted content, style, palette and TV terms, and their total. With the strength
        control the style and palette terms are scaled per example by the strength's loss scale k, and every output
        term is divided by 1 + k, so that examples of every strength pull on the shared weights alike (the style
        to content ratio is k: at strength 2 the terms weigh 1/5 and 4/5)."""
        cfg = self.config
        scale, norm = 1.0, 1.0
        if strength is not None and cfg.strength_max:
            scale = strength_lib.loss_scale(strength)[:, 0]
            norm = 1.0 / (1.0 + scale)
        output_feats = self._loss_features(output)
        if cfg.content_target == "photo":
            content_term = losses.content_loss(output_feats[PHOTO_CONTENT_LAYER], content_feats[PHOTO_CONTENT_LAYER])
        else:
            content_term = losses.content_loss(output_feats[BOTTLENECK], adain_target)
        style_grams = {n: losses.gram_matrix(style_feats[n]) for n in self.style_layers}
        style_term = self._style_term(output_feats, style_grams)
        if cfg.viewing_weight and style is not None:
            style_term += cfg.viewing_weight * self._viewing_style_term(output, style, style_grams)
        if cfg.style_relative:
            style_term = losses.relative_style_loss(style_term, self._style_term(content_feats, style_grams),
                                                    cfg.style_target)
        tv_term = losses.total_variation_loss(output)
        if cfg.inversion_weight and adain_target is not None:
            terms["inversion"] = cfg.inversion_weight * losses.content_loss(output_feats[BOTTLENECK], adain_target)
        if cfg.layout_weight and content is not None:
            terms["layout"] = cfg.layout_weight * norm * losses.layout_loss(output, content)
        if cfg.photo_weight:
            terms["photo"] = cfg.photo_weight * norm * losses.content_loss(output_feats[PHOTO_CONTENT_LAYER],
                                                                           content_feats[PHOTO_CONTENT_LAYER])
        terms.update({
            "content": cfg.content_weight * norm * content_term,
            "style": cfg.style_weight * scale * norm * style_term,
            "tv": cfg.tv_weight * norm * tv_term,
        })
        if cfg.palette_weight and style is not None:
            terms["palette"] = cfg.palette_weight * scale * norm * losses.palette_loss(output, style)
        terms["total"] = tf.add_n(list(terms.values()))
        return terms

    def _style_term(self, feats: dict[str, tf.Tensor], style_grams: dict[str, tf.Tensor]) -> tf.Tensor:
        """Gram style loss of `feats` against the style's Grams, averaged over the style layers: [B]."""
        return tf.add_n([losses.style_loss(feats[n], style_grams[n]) for n in self.style_layers]) / len(style_grams)

    def _viewing_style_term(self, output: tf.Tensor, style: tf.Tensor, style_grams: dict[str, tf.Tensor]
                            ) -> tf.Tensor:
        """The Gram style term of the output shrunk by viewing_scale (antialiased) against the style crop shrunk
        alike (viewing_target 'shrunk') or as it is ('whole': `style_grams`, the full-size crop's Grams): [B]."""
        def shrink(images: tf.Tensor) -> tf.Tensor:
            size = tf.cast(tf.round(tf.cast(tf.shape(images)[1:3], tf.float32) * self.config.viewing_scale), tf.int32)
            return tf.image.resize(images, size, method="bilinear", antialias=True)

        if self.config.viewing_target == "shrunk":
            small_style = self._loss_features(shrink(style))
            style_grams = {n: losses.gram_matrix(small_style[n]) for n in self.style_layers}
        return self._style_term(self._loss_features(shrink(output)), style_grams)

    def _student_losses(self, content: tf.Tensor, style: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """The phone-sized network's terms: identity, distill (to the teacher), content, style, TV."""
        cfg = self.config
        content_feats = self._loss_features(content)
        style_feats = self._loss_features(style)
        terms = {}
        own = self._student_vector(content_feats, content)
        batch = tf.shape(content)[0]
        if cfg.identity_weight:
            reconstruction = self.net.transform(content, own, tf.zeros([batch, 1]), training=True)
            terms["identity"] = cfg.identity_weight * losses.reconstruction_loss(reconstruction, content)
        strength = self.sample_strength(batch)
        amount = strength_lib.blend_amount(strength)
        style_vector = self._student_vector(style_feats, style)
        vector = style_vector if cfg.strength_max == 0 else amount * style_vector + (1.0 - amount) * own
        output = self.net.transform(content, vector, strength, training=True)
        if cfg.distill_weight:
            levels = self.teacher.config.levels
            targets = self.teacher.styled_levels([content_feats[n] for n in levels],
                                                 self.teacher.vector_of([style_feats[n] for n in levels]))
            taught = tf.stop_gradient(tf.clip_by_value(self.teacher.decode(targets), 0.0, 1.0))
            terms["distill"] = cfg.distill_weight * losses.reconstruction_loss(output, taught)
        return self._output_terms(terms, output, content_feats, style_feats, None, strength, style, content), output

    def _student_vector(self, feats: dict[str, tf.Tensor], images: tf.Tensor) -> tf.Tensor:
        """The phone-sized network's style vector of images, from their loss-network features (and pixels)."""
        moments = levels_vector([feats[n] for n in ENCODER_LAYERS])
        if not self.network_config.palette:
            return moments
        return tf.concat([moments, palette_lib.pixel_moments(images)], axis=-1)

    def _loss_features(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Layer name -> VGG features of [0, 1] images (one pass; the encoder's levels are among them)."""
        return dict(zip(self.loss_layers, self.loss_net(images)[1]))

    def _replica_gradients(self, content, style):
        global_batch = self.config.batch_size
        with tf.GradientTape() as tape:
            terms, _ = self.compute_losses(content, style)
            loss = tf.reduce_sum(terms["total"]) / global_batch
        grads = tape.gradient(loss, self.trainable_variables)
        sums = {k: tf.reduce_sum(v) / global_batch for k, v in terms.items()}
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads] + [tf.math.is_finite(loss)])
        return grads, sums, tf.cast(tf.logical_not(finite), tf.int32)

    def _replica_apply(self, grads):
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))

    @tf.function
    def _compute(self, batch):
        content, style = batch
        grads, sums, bad = self.strategy.run(self._replica_gradients, args=(content, style))
        sums = {k: self.strategy.reduce("SUM", v, axis=None) for k, v in sums.items()}
        finite = tf.equal(self.strategy.reduce("SUM", bad, axis=None), 0)
        return grads, sums, finite

    @tf.function
    def _apply(self, grads):
        self.strategy.run(self._replica_apply, args=(grads,))
        self.step.assign_add(1)

    def train_step(self, batch) -> tuple[dict[str, float], bool]:
        """One distributed step; returns the batch losses and whether the update was applied."""
        grads, sums, finite = self._compute(batch)
        if bool(finite):
            self._apply(grads)
            self.skipped_steps = 0
        else:
            self.skipped_steps += 1
        return {k: float(v) for k, v in sums.items()}, bool(finite)

    # -- the loop --------------------------------------------------------------------
    def fit(self, on_log: Callable[[int, dict[str, float], float], None] | None = None) -> dict[str, float]:
        """Train until config.steps (resuming from the last checkpoint); returns the last losses."""
        cfg = self.config
        content = data_lib.scan_sources(cfg.content_dir)
        style = data_lib.scan_sources(cfg.style_dir)
        print(f"data: {len(content.files)} content images ({len(content.skipped)} skipped), "
              f"{len(style.files)} style images ({len(style.skipped)} skipped)", flush=True)
        if self.resumed_from:
            print(f"resumed from {self.resumed_from} at step {self.current_step}", flush=True)
        seed = cfg.seed + self.current_step  # a resumed run does not replay the same batches
        tf.random.set_seed(seed)
        dataset = data_lib.training_dataset(content.files, style.files, cfg.batch_size, cfg.crop,
                                            style_crop=cfg.style_crop or None, seed=seed)
        dist = iter(self.strategy.experimental_distribute_dataset(dataset))
        writer = tf.summary.create_file_writer(os.path.join(cfg.model_dir, "logs"))
        last, started, first_step = {}, time.time(), self.current_step
        while self.current_step < cfg.steps:
            batch = next(dist)
            last, applied = self.train_step(batch)
            step = self.current_step
            if not applied:
                print(f"step {step + 1}: non-finite loss {last}, update skipped "
                      f"({self.skipped_steps} in a row)", flush=True)
                if self.skipped_steps >= cfg.max_bad_steps:
                    raise TrainingError(f"{self.skipped_steps} consecutive non-finite steps; stopping "
                                        f"(last good checkpoint: {self.manager.latest_checkpoint})")
                continue
            rate = (step - first_step) / max(time.time() - started, 1e-9)
            if step % cfg.log_every == 0 or step == cfg.steps:
                with writer.as_default(step=step):
                    for k, v in last.items():
                        tf.summary.scalar(f"loss/{k}", v)
                    tf.summary.scalar("steps_per_second", rate)
                if on_log:
                    on_log(step, last, rate)
            if step % cfg.image_every == 0 or step == cfg.steps:
                self._log_images(writer, step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self.save()
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                self.save_network(os.path.join(cfg.model_dir, "snapshots", f"step-{step}"))
        writer.flush()
        return last

    def _log_images(self, writer, step: int) -> None:
        """A fixed-seed preview grid (content | style | output) in TensorBoard."""
        batch = self._preview_batch()
        _, output = self.compute_losses(*batch)
        with writer.as_default(step=step):
            tf.summary.image("content_style_output", image_grid(*batch, output), max_outputs=1)

    def _preview_batch(self):
        if not hasattr(self, "_preview"):
            c = data_lib.scan_sources(self.config.content_dir, check=False).files
            s = data_lib.scan_sources(self.config.style_dir, check=False).files
            rng = np.random.default_rng(0)
            pick = lambda files: tf.stack([  # noqa: E731
                tf.image.resize(data_lib.decode(f), [self.config.crop] * 2, antialias=True)
                for f in rng.choice(files, 4)])
            self._preview = (pick(c), pick(s))
        return self._preview

    def save(self) -> str:
        """Write a checkpoint and the inference weights (model_dir/network)."""
        path = self.manager.save(checkpoint_number=self.current_step)
        self.save_network(os.path.join(self.config.model_dir, "network"))
        return path

    def save_network(self, folder: str) -> None:
        """The inference weights as a network folder (nst-stylize --model=folder)."""
        if self.student:  # with its VGG16: the loss network may not be the bundled predictor's
            self.net.save(folder, include_encoder=True)
        else:
            self.net.save(folder)
