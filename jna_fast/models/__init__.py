from .jna import JNA, CrossStitch, JNAOutput, JointTemporalAttention
from .resnet import ResNet, cross_modality_conv1

__all__ = ["JNA", "JNAOutput", "CrossStitch", "JointTemporalAttention", "ResNet", "cross_modality_conv1"]
