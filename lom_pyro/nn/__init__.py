"""Plain-torch networks (no pyro import): transformers, set encoder, decoders, EMORL's
slot attention and GENESIS-v2's UNet and IC-SBP."""

from lom_pyro.nn.attention import CausalTransformer, SABlock, SetEncoder
from lom_pyro.nn.decoders import BroadcastDeconvDecoder, SpatialBroadcastDecoder, position_ramps
from lom_pyro.nn.encoders import ConvTokenEncoder
from lom_pyro.nn.icsbp import InstanceColouringSBP, SemiConvEmbedding
from lom_pyro.nn.refinement import RefinementNetwork
from lom_pyro.nn.slot_attention import DualGRU, StochasticSlotAttention
from lom_pyro.nn.unet import UNet

__all__ = ["SABlock", "CausalTransformer", "SetEncoder", "SpatialBroadcastDecoder", "BroadcastDeconvDecoder",
           "position_ramps", "ConvTokenEncoder", "RefinementNetwork", "DualGRU", "StochasticSlotAttention",
           "UNet", "InstanceColouringSBP", "SemiConvEmbedding"]
