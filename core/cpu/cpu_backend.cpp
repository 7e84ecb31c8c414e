// core/cpu/cpu_backend.cpp — assembles the CPU kernel table from the per-family files.
//
// Each core/cpu/cpu_<family>.cpp defines its kernels and a register_<family>(Backend&) that
// stores them in the table; this file only calls them in turn.
#include <cstdlib>
#include <cstring>

#include "core/backend.h"

namespace engram::cpu {

void register_elementwise(Backend& b);  // cpu_elementwise.cpp
void register_reduce(Backend& b);       // cpu_reduce.cpp
void register_blas(Backend& b);         // cpu_blas.cpp
void register_index(Backend& b);        // cpu_index.cpp
void register_nn(Backend& b);           // cpu_nn.cpp
void register_conv(Backend& b);         // cpu_conv.cpp
void register_fft(Backend& b);          // cpu_fft.cpp
void register_scan(Backend& b);         // cpu_scan.cpp
void register_memory(Backend& b);       // cpu_memory.cpp
void register_episodic(Backend& b);     // cpu_episodic.cpp
void register_titans(Backend& b);       // cpu_titans.cpp
void register_ssm_mamba(Backend& b);    // cpu_ssm_mamba.cpp
void register_ssm_scan(Backend& b);     // cpu_ssm_scan.cpp
void register_cmr(Backend& b);          // cpu_cmr.cpp
void register_optim(Backend& b);        // cpu_optim.cpp
void register_attention(Backend& b);    // cpu_attention.cpp
void register_recurrent(Backend& b);    // cpu_recurrent.cpp

void* cached_alloc(size_t nbytes);  // cpu_alloc.cpp: 64-byte aligned, large blocks cached
void cached_free(void* p);

Backend make_cpu_backend() {
  Backend b;
  b.name = "cpu";
  b.alloc = cached_alloc;
  b.free = cached_free;
  register_elementwise(b);
  register_reduce(b);
  register_blas(b);
  register_index(b);
  register_nn(b);
  register_conv(b);
  register_fft(b);
  register_scan(b);
  register_memory(b);
  register_episodic(b);
  register_titans(b);
  register_ssm_mamba(b);
  register_ssm_scan(b);
  register_cmr(b);
  register_optim(b);
  register_attention(b);
  register_recurrent(b);
  return b;
}

}  // namespace engram::cpu
