"""Plain-torch networks (no pyro import): transformers, set encoder, decoders."""

from lom_pyro.nn.attention import CausalTransformer, SABlock, SetEncoder
from lom_pyro.nn.decoders import SpatialBroadcastDecoder, position_ramps
from lom_pyro.nn.encoders import ConvTokenEncoder
from lom_pyro.nn.refinement import RefinementNetwork
from lom_pyro.nn.slot_attention import DualGRU, StochasticSlotAttention

__all__ = ["SABlock", "CausalTransformer", "SetEncoder", "SpatialBroadcastDecoder", "position_ramps",
           "ConvTokenEncoder", "RefinementNetwork", "DualGRU", "StochasticSlotAttention"]
