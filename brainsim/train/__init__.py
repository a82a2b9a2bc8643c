"""Gradient training on brainsim's own models: surrogate spikes, constrained learnable parameters,
ML layers, encoders, losses, regularizers, an Optax ``fit`` loop and memory modes for BPTT.

Modules: ``surrogates`` (re-export of ``brainsim.spikes``), ``bijections``, ``layers``, ``encoders``,
``maps`` (convolutions, pooling, flatten, dropout, batch norm: layers' projections), ``batch_norm`` (running statistics), ``summary``, ``precision`` (mixed precision), ``losses``, ``regularizers``, ``bptt``, ``fit``, ``astro_layer`` (``AstroLIFLayer``), ``nnx`` (Flax NNX adapter, imported on demand).
"""
from .astro_layer import AstroLIFLayer
from . import bijections, bptt, encoders, losses, regularizers, surrogates
from .bijections import (Bijection, Bounded, Constrained, DaleSign, Exp, Identity, Positive, constrain, freeze,
                         resolve, trainable)
from .bptt import checkpointed_scan, truncated_loss
from .fit import (FitResult, NonFiniteLossError, TrainingInterrupted, fit, load_checkpoint, make_train_step,
                  save_checkpoint)
from .layers import LeakyReadout, Linear, Sequential, SparseLinear, SpikingLayer, ml_lif
from .maps import (AbstractSynapticMap, AvgPool2d, BatchNorm, Chain, Conv1d, Conv2d, Dropout, Flatten, MaxPool2d, Scale,
                   SumPool2d, inference_mode, with_dropout_keys)
from .batch_norm import calibrate_batch_norm
from .precision import Precision, mixed_precision
from .summary import summary
from .surrogates import SURROGATES, spike, surrogate_derivative
