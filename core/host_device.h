// core/host_device.h — ENGRAM_HOST_DEVICE: marks an inline function that both the CPU backend
// (g++) and the CUDA backend (nvcc, cuda/) compile, so a formula shared by the two is written once
// (core/elementwise_math.h, core/attention_mask.h). Empty outside nvcc.
#pragma once

#ifdef __CUDACC__
#define ENGRAM_HOST_DEVICE __host__ __device__
#else
#define ENGRAM_HOST_DEVICE
#endif
