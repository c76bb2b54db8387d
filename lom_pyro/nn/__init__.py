"""Plain-torch networks (no pyro import): transformers, set encoder, decoders."""

from lom_pyro.nn.attention import CausalTransformer, SABlock, SetEncoder
from lom_pyro.nn.decoders import SpatialBroadcastDecoder, position_ramps

__all__ = ["SABlock", "CausalTransformer", "SetEncoder", "SpatialBroadcastDecoder", "position_ramps"]
